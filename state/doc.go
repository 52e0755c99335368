// Package state captures a running system's user state (home directories,
// configured paths and the account records of their owners) into a store,
// and restores it into a freshly applied system.
//
// It exists for the refresh-in-place flow: the store lives on the same
// filesystem as the data (/minint/state), so Capture hard-links each file
// into it instead of copying, and the store survives the PE cleaning
// everything but /minint. For the replace flow a store is pushed to and
// pulled from a network location (HTTP PUT/GET, e.g. nginx WebDAV) or a
// plain directory by package state/netstore, kept apart so that
// minint-setup, which restores from a local directory, carries no HTTP
// client.
//
// Restore merges the captured account records first (rule: an account
// with the same name and id in the new system is kept as the new system
// has it; the same name with another id, or the same id under another
// name, is ErrAccountConflict and nothing is written), then recreates every
// entry beneath root without following symlinks. It checks the index, the
// manifest and every object's SHA-256 before writing anything.
//
// A store is:
//
//	objects/ab/abcdef…   file contents, named by their SHA-256
//	manifest.json        every entry: path, type, owner, mode, xattrs,
//	                     times, SHA-256, hard-link structure, accounts
//	index                "minint-state 1" + the manifest's SHA-256 and size
//
// The index is written last, so a store whose capture or upload was
// interrupted has no index (or one that does not match the manifest) and is
// refused as incomplete. Because a hard link shares the inode, the store
// objects' own owner, mode and xattrs are whatever the user file has: the
// manifest, not the object, is the record of metadata.
package state
