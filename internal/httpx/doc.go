// Package httpx is the one HTTP client layer of minint: every request the
// PE and the CLI make (packages, sequences, user-state stores, captured
// images, status events) goes through it, so that each of them gets the
// same answers to the same hostile or unlucky network.
//
//   - Time: a connection, a TLS handshake and a response's headers each
//     have a limit (Timeouts), and a body that moves no byte for
//     Client.Idle is cut (ErrIdle) — in both directions, a download or an
//     upload. There is deliberately no limit on a request's total time: a
//     deployment image may take an hour over a slow link and must not be
//     cut while bytes still flow; a trickling server that stops is.
//   - Retries: Client.Retry repeats an idempotent operation on transient
//     failures (Transient: connection errors, cut or idle bodies, 408, 429,
//     5xx but 501/505/507), with capped exponential backoff and jitter, a
//     server's Retry-After on 429/503, and the caller's context as the
//     outer bound. Everything else — 404, 401, a checksum mismatch, a full
//     disk — fails at once.
//   - Errors: one *StatusError for an unwanted status (method, redacted
//     URL, status, a bounded excerpt of a plain-text body, Retry-After),
//     matched with errors.Is against ErrNotFound, ErrUnauthorized and
//     ErrForbidden; ErrNoRange for a server that answers a Range request
//     with the whole file; ErrTooLarge for a body over the caller's bound;
//     ErrIdle and ErrTruncated for bodies that stall or end early.
//   - Bounds: ReadAll and LimitReader fail with ErrTooLarge instead of
//     truncating silently, so an endless or oversized index, manifest or
//     sequence is refused with a clear error in bounded memory.
//   - Secrets: every URL this package puts in an error or a log line is
//     redacted (package redact): a userinfo password and token-like query
//     parameters never reach a console, a log upload or an event.
//
// Package webdav builds the WebDAV client (upload, user-state stores) on
// top of it; package fetch the verified package transport.
package httpx
