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
// A store is only believed with a signature: Capture signs the index
// with Spec.Key (a state key from minint keygen, or the key the PE makes
// for its own capture), and Restore, ReadSigned and netstore.Pull check it
// against the keys they are given before reading the manifest
// (ErrUnsigned). Whoever can write a store's location could otherwise hand
// the new system accounts and files.
//
// Restore merges the captured account records first (rule: an account
// with the same name and id in the new system is kept as the new system
// has it; the same name with another id, or the same id under another
// name, is ErrAccountConflict and nothing is written), then recreates the
// entries beneath root without following symlinks. It checks the
// signature, the index, the manifest and every object's SHA-256 before
// writing anything. Whatever the signature says, it restores
// least-privileged (planAccounts, restorable): well-formed regular
// accounts only, no new memberships in system groups, files only in the
// captured users' homes and the caller's paths, no device nodes,
// setuid/setgid bits or file capabilities; what it leaves out is in
// Report.Warnings. docs/security.md has the threat model.
//
// A store is:
//
//	objects/ab/abcdef…   file contents, named by their SHA-256
//	manifest.json        every entry: path, type, owner, mode, xattrs,
//	                     times, SHA-256, hard-link structure, accounts
//	index.sig            the index's ed25519 signature (package sign)
//	index                "minint-state 1" + the manifest's SHA-256 and size
//
// The index is written last, so a store whose capture or upload was
// interrupted has no index (or one that does not match the manifest) and is
// refused as incomplete. Because a hard link shares the inode, the store
// objects' own owner, mode and xattrs are whatever the user file has: the
// manifest, not the object, is the record of metadata.
package state
