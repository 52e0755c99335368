// Package fetch gets image packages to the PE over HTTP(S), and hands on
// only bytes that match their signed manifest (package manifest).
//
// One verified reader chain: bytes -> size limit -> hash -> file. A file
// is handed on only after its size and hash (its chunk hashes when the
// entry has them, else its SHA-256) match the manifest entry; errors wrap
// manifest.ErrSize, manifest.ErrChecksum, or an *httpx.StatusError
// (httpx.ErrNotFound, …) for a status that retrying will not fix.
//
// The transport is package httpx: timeouts, an idle limit that drops a
// connection that stops sending, retries with backoff, redacted URLs.
// Downloads resume: a partial file (NAME.part in the staging folder) is
// continued with an HTTP Range request after a network error or a reboot,
// inside the fetch step's time limit. A server that ignores Range is
// recognised by its answer (every request asks for a range) and read from
// byte 0 instead (see Transfer); only File, which cannot work without
// Range, refuses it (httpx.ErrNoRange).
//
// Applying straight from HTTP (no room to stage) uses File, an io.ReaderAt
// over Range requests; applying while the download runs uses Transfer.
// Both need the entry's per-chunk hashes and verify every chunk before a
// single byte of it is returned, so a tampered server can make an apply
// fail but never feed it unverified data.
package fetch
