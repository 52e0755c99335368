package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"

	"github.com/minint/minint/internal/directio"
	"github.com/minint/minint/internal/durable"
	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/redact"
	"github.com/minint/minint/manifest"
)

// ErrClosed: the transfer was stopped by Close before it finished.
var ErrClosed = errors.New("transfer closed")

// Transfer is a download into the staging folder that can be read while it
// is still under way, so that applying an image overlaps fetching it
// (pipelined fetch and apply).
//
// Fail-closed argument. A staged download is verified whole before anything
// reads it; a pipelined one is read before its last byte has arrived, so
// the whole-file SHA-256 cannot be what guards the reader. What guards it
// are the manifest's per-chunk hashes (BLAKE3 or SHA-256), signed with the
// manifest like everything else (the same guard File uses when applying
// straight from HTTP): ReadAt returns bytes of a chunk only after the whole chunk is on
// disk and its hash matched. The WIM parser and the files written to the
// target therefore never see a byte the signing key did not vouch for, and
// a tampered or truncated server can make the apply fail but never steer
// it. Wait reports success, and the file gets its final name, only once
// every chunk is on disk and matched; the caller makes the target bootable
// only after that (see pe's pipeline). A file of the signed size whose
// every chunk matches the signed chunk list is the file the signer hashed
// (collisions of the chunk hash aside): that is the whole-file check, and
// the whole-file SHA-256 is not computed again on top (issue 16: each byte
// is received, hashed and written once, and read once more by the apply;
// writes and reads bypass the page cache where aligned, see directFile).
// A manifest without chunk hashes cannot be pipelined: StartTransfer
// refuses it and the caller stages instead.
//
// Order of arrival. One sequential stream (a single GET, continued with
// Range after an error) fills the file from the first missing chunk on. A
// reader that needs a chunk far ahead of the stream — a WIM keeps its blob
// table, XML data and often its metadata at the end — gets it by a Range
// request of its own, verified the same way and written in place, which
// the stream then skips. Readers of nearby chunks wait for the stream. A
// wait is bounded by the transfer's context (the fetch step's time limit),
// by the client's idle limit on the stream (a silent connection is
// dropped and asked again), and by the transfer failing.
//
// Resume. The partial file (NAME.part) may be sparse and may hold chunks
// written out of order or damaged by a power cut, so its length says
// nothing. StartTransfer hashes every chunk of it: those that match are
// kept, the stream starts at the first one that does not. The download is
// not fsync'd as it goes, only once whole, before its rename: on the
// target's file system an fsync commits the journal with everything the
// apply running next to it has written, which would make every few MiB
// of download wait for the apply's writes to reach the disk. Chunks
// written with O_DIRECT reach the disk at once, but the file system
// records their blocks only with its next journal commit; either way a
// power cut loses at most some seconds of download, which is fetched
// again.
//
// Servers that ignore Range (python3 -m http.server, some proxies and
// CDNs) answer every request with the whole file. Every request carries a
// Range header (the first one "bytes=0-"), so the first 200 in place of a
// 206 shows it: from then on no reader fetches a chunk of its own, and
// the stream, restarted if need be, runs from byte 0 to the end, skipping
// (reading but not writing) the chunks already verified — a resume, too,
// starts from zero and keeps what verified. Readers wait for the stream,
// so an apply that needs the WIM's tables at the end of the file starts
// once the whole file is on disk: the pipeline becomes a sequential
// download followed by the apply, under the same guards (each chunk
// verified before it is read, all of them before anything
// after the apply). That keeps `mode: auto` working over such a server at
// the cost of the overlap. One sequential stream straight into the apply
// would save the staging space, but the apply would first have to hold
// the whole image somewhere to reach the tables at its end, and the
// whole-file hash could gate nothing the apply had not already written;
// so without room to stage, such a server cannot serve a WIM, and the
// fetch step says so. An explicit `mode: pipeline` asked for the overlap
// and is refused instead (see IgnoresRange).
type Transfer struct {
	c         *Client
	url, dest string
	shown     string // url redacted, for messages
	part      string
	e         *manifest.Entry
	sums      [][32]byte
	f         *directFile
	progress  func(done, total int64)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ended  chan struct{} // closed when every goroutine has stopped

	mu       sync.Mutex
	have     []bool // chunk on disk and verified
	busy     []bool // chunk being written (by the stream or a range fetch)
	haveN    int
	haveSize int64
	partial  int64 // bytes of the stream's current chunk so far
	front    int   // the chunk the stream is at
	changed  chan struct{}
	err      error
	ok       bool
	noRange  bool // the server answered a Range request with the whole file

	// Resumed is how many bytes of verified chunks a partial file from an
	// earlier try held; RangeFetches counts chunks fetched out of order.
	Resumed      int64
	RangeFetches int
}

// lookahead is how many chunks past the stream a reader waits for rather
// than fetching them itself: they will come soon enough, and a parallel
// request would only share the same bandwidth.
const lookahead = 2

// StartTransfer begins downloading url into dest (through dest+".part")
// and returns once the partial file has been checked and the server has
// answered the first request, so that a missing file (httpx.ErrNotFound)
// or one of the wrong size (manifest.ErrSize) is reported here. e must carry chunk hashes
// (manifest.ErrFormat otherwise). progress, if not nil, is called with the bytes
// on disk and verified (and those of the chunk arriving). The transfer runs
// until Wait says how it ended or Close stops it; ctx bounds it.
func (c *Client) StartTransfer(ctx context.Context, url, dest string, e *manifest.Entry, progress func(done, total int64)) (*Transfer, error) {
	if e.ChunkSize <= 0 || len(e.Chunks) == 0 && e.Size > 0 {
		return nil, fmt.Errorf("%w: %s has no per-chunk hashes, so it cannot be read before the download ends; stage it (or rebuild the package with chunk hashes)", manifest.ErrFormat, e.Path)
	}
	t := &Transfer{c: c, url: url, shown: redact.URL(url), dest: dest, part: dest + ".part", e: e, progress: progress,
		have: make([]bool, len(e.Chunks)), busy: make([]bool, len(e.Chunks)),
		changed: make(chan struct{}), ended: make(chan struct{}), sums: e.ChunkSums()}
	// A file already under its final name was verified by an earlier run
	// that may not have lived to record it; it is checked again like any
	// partial file (and renamed back once it passes).
	if _, err := os.Lstat(dest); err == nil {
		if err := os.Rename(dest, t.part); err != nil {
			return nil, err
		}
	}
	f, err := openDirect(t.part)
	if err != nil {
		return nil, err
	}
	t.f = f
	if fi, err := f.Stat(); err != nil {
		f.Close()
		return nil, err
	} else if fi.Size() > e.Size {
		if err := f.Truncate(e.Size); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := t.scan(); err != nil {
		f.Close()
		return nil, err
	}
	t.ctx, t.cancel = context.WithCancel(ctx)
	var resp *http.Response
	if start := t.nextMissing(0); start >= 0 {
		t.front = start
		err := c.Retry(t.ctx, "GET "+t.shown, func() error {
			var err error
			resp, _, err = t.open(start)
			return err
		})
		if err != nil {
			t.cancel()
			f.Close()
			return nil, err
		}
	}
	t.wg.Add(2)
	go t.stream(resp)
	go t.verify()
	go func() {
		t.wg.Wait()
		close(t.ended)
	}()
	return t, nil
}

// Size is the file's size from the manifest.
func (t *Transfer) Size() int64 { return t.e.Size }

func (t *Transfer) chunkLen(i int) int64 {
	return min(t.e.ChunkSize, t.e.Size-int64(i)*t.e.ChunkSize)
}

// scan hashes the chunks already in the partial file and keeps those that
// match.
func (t *Transfer) scan() error {
	buf := directio.Buf(int(min(t.e.ChunkSize, 4<<20)))
	for i := range t.have {
		h := t.e.NewChunkHash()
		off, n := int64(i)*t.e.ChunkSize, t.chunkLen(i)
		good := true
		for done := int64(0); done < n; {
			k, err := t.f.ReadAt(buf[:min(int64(len(buf)), n-done)], off+done)
			if k > 0 {
				h.Write(buf[:k])
				done += int64(k)
			}
			if err == io.EOF {
				good = done == n
				break
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", t.part, err)
			}
		}
		if good && [32]byte(h.Sum(nil)) == t.sums[i] {
			t.have[i] = true
			t.haveN++
			t.haveSize += n
		}
	}
	t.Resumed = t.haveSize
	if t.haveSize > 0 && t.progress != nil {
		t.progress(t.haveSize, t.e.Size)
	}
	return nil
}

// nextMissing is the first chunk from i on that is neither on disk nor
// being written, or -1.
func (t *Transfer) nextMissing(i int) int {
	for ; i < len(t.have); i++ {
		if !t.have[i] && !t.busy[i] {
			return i
		}
	}
	return -1
}

// broadcast wakes every waiter; t.mu is held.
func (t *Transfer) broadcast() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// fail ends the transfer with err (the first error wins).
func (t *Transfer) fail(err error) {
	t.mu.Lock()
	if t.err == nil && !t.ok {
		t.err = err
		t.broadcast()
	}
	t.mu.Unlock()
	t.cancel()
}

func (t *Transfer) report() {
	if t.progress == nil {
		return
	}
	t.mu.Lock()
	done := t.haveSize + t.partial
	t.mu.Unlock()
	t.progress(min(done, t.e.Size), t.e.Size)
}

// open requests the file from chunk start on. It returns the chunk the
// body starts at: start, or 0 when the server ignored Range.
func (t *Transfer) open(start int) (*http.Response, int, error) {
	resp, ranged, err := t.c.open(t.ctx, t.url, int64(start)*t.e.ChunkSize, -1, t.e.Size)
	if err != nil {
		return nil, 0, err
	}
	if !ranged {
		t.rangeIgnored()
		return resp, 0, nil
	}
	return resp, start, nil
}

// rangeIgnored records that the server ignores Range: readers wait for
// the stream from now on.
func (t *Transfer) rangeIgnored() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.noRange {
		t.noRange = true
		t.c.logf("%s: the server ignores Range requests: the file is read in order, the apply waits for what it needs", t.shown)
	}
}

// IgnoresRange reports whether the server answered a Range request with
// the whole file (known once StartTransfer returned, unless nothing was
// missing).
func (t *Transfer) IgnoresRange() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.noRange
}

// stream runs the sequential download: first on resp (already open), then
// on new requests from the first missing chunk after an error.
func (t *Transfer) stream(resp *http.Response) {
	defer t.wg.Done()
	first := true
	err := t.c.Retry(t.ctx, "GET "+t.shown, func() error {
		t.mu.Lock()
		start := t.nextMissing(0)
		noRange := t.noRange
		t.mu.Unlock()
		if start < 0 {
			if resp != nil {
				resp.Body.Close()
			}
			return nil
		}
		if noRange {
			start = 0 // everything comes again; what is verified is skipped
		}
		if !first || resp == nil {
			var err error
			if resp, start, err = t.open(start); err != nil {
				return err
			}
		}
		first = false
		defer resp.Body.Close()
		return t.consume(resp.Body, start)
	})
	if err != nil {
		t.fail(err)
	}
}

// consume reads the body from chunk i on, writing and verifying the chunks
// nobody else has or is fetching, skipping the others.
//
// The body is read in whole buffers (io.ReadFull) rather than in what each
// Read happens to return: a TCP stream hands out a few KiB at a time, and
// in a one-vCPU PE under TCG every write, lock and progress report per
// read costs the apply running beside it (issue 16).
func (t *Transfer) consume(body io.Reader, i int) error {
	buf := directio.Buf(1 << 20)
	for ; i < len(t.have); i++ {
		n := t.chunkLen(i)
		off := int64(i) * t.e.ChunkSize
		t.mu.Lock()
		write := !t.have[i] && !t.busy[i]
		if write {
			t.busy[i] = true
		}
		t.front, t.partial = i, 0
		t.mu.Unlock()
		h := t.e.NewChunkHash()
		var done int64
		var err error
		for done < n && err == nil {
			var k int
			k, err = io.ReadFull(body, buf[:min(int64(len(buf)), n-done)])
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			if k > 0 {
				if write {
					h.Write(buf[:k])
					if _, werr := t.f.WriteAt(buf[:k], off+done); werr != nil {
						err = werr
						break
					}
					t.mu.Lock()
					t.partial += int64(k)
					t.mu.Unlock()
					t.report()
				}
				done += int64(k)
			}
		}
		if done == n {
			err = nil
		} else if err == io.EOF || err == nil {
			err = fmt.Errorf("GET %s: %w at byte %d of %d", t.shown, httpx.ErrTruncated, off+done, t.e.Size)
		} else {
			err = fmt.Errorf("GET %s: at byte %d: %w", t.shown, off+done, err)
		}
		if write {
			if err == nil && [32]byte(h.Sum(nil)) != t.sums[i] {
				err = fmt.Errorf("%w: %s bytes %d-%d do not match the manifest's chunk hash", manifest.ErrChecksum, t.e.Path, off, off+n-1)
			}
			t.mu.Lock()
			t.busy[i], t.partial = false, 0
			if err == nil {
				t.have[i] = true
				t.haveN++
				t.haveSize += n
			}
			t.broadcast()
			t.mu.Unlock()
			t.report()
		}
		if err != nil {
			return err
		}
	}
	// The manifest's size was reached; a server sending more has another file.
	if k, _ := body.Read(buf[:1]); k > 0 {
		return fmt.Errorf("%w: %s is longer than the manifest's %d bytes", manifest.ErrSize, t.shown, t.e.Size)
	}
	return nil
}

// fetchChunk gets chunk i with a Range request of its own (a reader needs
// it long before the stream gets there). A server that answers with the
// whole file ignores Range after all (the stream's request was honoured):
// the chunk is read out of that answer, once — from then on readers wait
// for the stream.
func (t *Transfer) fetchChunk(i int) {
	defer t.wg.Done()
	start := int64(i) * t.e.ChunkSize
	end := start + t.chunkLen(i)
	err := t.c.Retry(t.ctx, fmt.Sprintf("GET %s bytes %d-%d", t.shown, start, end-1), func() error {
		resp, ranged, err := t.c.open(t.ctx, t.url, start, end, t.e.Size)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if !ranged {
			t.rangeIgnored()
			if _, err := io.CopyN(io.Discard, resp.Body, start); err != nil {
				return fmt.Errorf("GET %s: %w", t.shown, err)
			}
		}
		b := directio.Buf(int(end - start))
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			return fmt.Errorf("GET %s bytes %d-%d: %w", t.shown, start, end-1, err)
		}
		if t.e.SumChunk(b) != t.sums[i] {
			return fmt.Errorf("%w: %s bytes %d-%d do not match the manifest's chunk hash", manifest.ErrChecksum, t.e.Path, start, end-1)
		}
		_, err = t.f.WriteAt(b, start)
		return err
	})
	t.mu.Lock()
	t.busy[i] = false
	if err == nil {
		t.have[i] = true
		t.haveN++
		t.haveSize += end - start
		t.RangeFetches++
	}
	t.broadcast()
	t.mu.Unlock()
	if err != nil {
		t.fail(err)
		return
	}
	t.report()
}

// verify waits until every chunk is on disk and matched its hash (the
// whole file is then verified, see Transfer) and makes the file durable
// under its final name.
func (t *Transfer) verify() {
	defer t.wg.Done()
	for i := range t.have {
		if err := t.await(i, false); err != nil {
			return // the transfer failed or was closed: t.err says why
		}
	}
	err := func() error {
		return durable.Rename(t.part, t.dest)
	}()
	if err != nil {
		t.fail(err)
		return
	}
	t.mu.Lock()
	if t.err == nil {
		t.ok = true
	}
	t.broadcast()
	t.mu.Unlock()
}

// await waits until chunk i is on disk and verified. A reader (fetch true)
// far ahead of the stream fetches the chunk itself.
func (t *Transfer) await(i int, fetch bool) error {
	for {
		t.mu.Lock()
		if t.have[i] {
			t.mu.Unlock()
			return nil
		}
		if t.err != nil {
			err := t.err
			t.mu.Unlock()
			return err
		}
		if fetch && !t.busy[i] && !t.noRange && i > t.front+lookahead {
			t.busy[i] = true
			t.wg.Add(1)
			go t.fetchChunk(i)
		}
		ch := t.changed
		t.mu.Unlock()
		<-ch
	}
}

// ReadAt implements io.ReaderAt: it returns verified bytes only, waiting for
// them to arrive (see Transfer). Safe for concurrent use.
func (t *Transfer) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset", t.e.Path)
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= t.e.Size {
			return n, io.EOF
		}
		i := int(pos / t.e.ChunkSize)
		if err := t.await(i, true); err != nil {
			return n, err
		}
		end := min(int64(i+1)*t.e.ChunkSize, t.e.Size)
		k, err := t.f.ReadAt(p[n:min(int64(len(p)), int64(n)+end-pos)], pos)
		n += k
		if err != nil {
			return n, fmt.Errorf("reading %s: %w", t.part, err)
		}
	}
	return n, nil
}

// DirectIO is how many bytes of the file were written and read bypassing
// the page cache (see directFile): the benchmark's check that they were.
func (t *Transfer) DirectIO() (written, read int64) {
	return t.f.directWritten.Load(), t.f.directRead.Load()
}

// Wait blocks until the transfer has ended and every goroutine of it has
// stopped. nil means the whole file arrived, every chunk matched the
// manifest's chunk hashes, and it is durable under its final name.
func (t *Transfer) Wait() error {
	<-t.ended
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ok {
		return nil
	}
	if t.err == nil {
		return ErrClosed
	}
	return t.err
}

// Err is the transfer's failure so far: nil while it runs or once it
// succeeded.
func (t *Transfer) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Done is closed when the transfer has ended (Wait then returns at once).
func (t *Transfer) Done() <-chan struct{} { return t.ended }

// Close stops a transfer that is still running (the partial file stays for
// a later resume), waits for it, and releases the file. Readers blocked in
// ReadAt return ErrClosed.
func (t *Transfer) Close() error {
	t.fail(fmt.Errorf("%s: %w", t.shown, ErrClosed))
	<-t.ended
	return t.f.Close()
}
