// Package serve is `minint serve DIR`: everything a small site (a
// technician's laptop, one server) needs on the other end of a
// deployment, in one process.
//
//   - Packages: GET and HEAD of the files under DIR, with Range requests
//     (a PE resumes and pipelines downloads with them) and an ETag derived
//     from modification time and size, as nginx derives it.
//   - Stores: the WebDAV subset package webdav speaks (PUT, MOVE, DELETE,
//     MKCOL) for captured images and user-state stores. A PUT lands under
//     a temporary name and is renamed into place only when complete and
//     synced, so a broken upload never replaces what was stored.
//   - Status: POST /status takes the JSON-lines events and the failure
//     logs that a sequence's status-url sends; each request names its
//     machine in the X-Minint-Machine header (progress.Machine).
//   - Dashboard: GET / is one page, one row per machine, failed machines
//     first, updated live over server-sent events (/status/stream); the
//     same rows are JSON at /status/machines.
//
// Writes (PUT, MOVE, DELETE, MKCOL, POST /status) need the write token, as
// the password of basic authentication (http://:TOKEN@host/… in a URL, as
// minint's clients send it) or as a bearer token. The dashboard, its
// stream and the logs can require their own basic-auth credentials.
// Files are readable by anyone who can reach the server, except in the
// Private folders (user-state stores), which need the write token.
//
// Durability: an event or log is answered with success only after it is
// on disk. Events go to an append-only JSON-lines journal (events.jsonl in
// the state directory), appended in batches with one fsync per batch, and
// are replayed on start, so a restart loses nothing and a machine that
// reports again after a reboot continues its row. A journal whose last
// line was cut by a crash loses that line only (it was never
// acknowledged); damage anywhere else stops the server with an error
// naming the line rather than dropping what follows.
//
// Hostile input is bounded: an event is at most MaxEvent bytes, a log at
// most MaxLog, a request body that sends nothing for Idle is cut, paths
// with "." or ".." segments are refused and every file operation goes
// through an os.Root on DIR, so a symbolic link cannot lead outside it
// either. What a machine reports is shown as text, never as markup.
package serve
