// Package wim reads and writes Windows Imaging (WIM) archives.
//
// It mirrors archive/zip: a Reader over an io.ReaderAt lists the images of a
// WIM, walks their directory trees, streams file data (checking each blob's
// SHA-1) and applies an image to a directory; a Writer captures directory
// trees into new images, deduplicating identical data by SHA-1, and writes
// the blob table, XML data and header on Close.
//
// The on-disk format follows wimlib's source and Microsoft's documentation:
// version 0x10D00 headers, uncompressed, XPRESS and LZX resources, multi-image
// and split (.swm) WIMs, the optional integrity table, and wimlib's UNIX data
// and xattr extensions so that a Linux root filesystem round-trips exactly
// (owners, modes, device nodes, FIFOs, sockets, symlinks, hard links, xattrs,
// 100 ns timestamps). Windows security descriptors and named data streams are
// preserved when images are copied between WIMs but are not applied on Linux.
//
// Applying is safe by construction: names are validated before anything is
// created, nothing is ever resolved through a symlink (openat2 with
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), and every blob's SHA-1 is checked as
// it is written. A caller that authenticates the WIM's bytes itself may
// have each blob's XXH64 checked instead, from a table made by checking
// the SHA-1s once (Checksums); only ApplyOptions.InsecureSkipHashCheck,
// for measuring these checks, turns them off.
//
// Interoperability with wimlib-imagex: symlink targets are applied exactly
// as stored, like wimlib's --norpfix (right for deploying a root file
// system; capture with --norpfix on the wimlib side, or use relative links,
// for both tools to agree). A WIM dentry of a reparse point has no
// hard-link group, so hard-linked symlinks keep theirs in a minint tagged
// item: they round-trip minint to minint, while wimlib applies them as
// separate symlinks. Reading is range-friendly (small resources in one
// ReadAt, big ones in 1 MiB windows), so a Reader over HTTP Range
// requests works.
//
// The long operations (Image.Apply, Reader.Verify, Writer.AddImage,
// Writer.ExportImage, Split) take a context and stop soon after it is
// cancelled, returning its error; a Writer then fails, and Close removes
// what it wrote.
//
// A Reader (and its Images and Files) is safe for concurrent use; a Writer
// is not.
package wim
