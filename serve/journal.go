package serve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/minint/minint/internal/progress"
)

// record is one line of the events journal: an event or a stored log,
// with the machine that sent it and when it arrived.
type record struct {
	Seq     int64            `json:"seq"`
	At      time.Time        `json:"at"`
	Machine progress.Machine `json:"machine"`
	Remote  string           `json:"remote,omitempty"`
	Event   json.RawMessage  `json:"event,omitempty"`
	Log     string           `json:"log,omitempty"` // path below the logs directory
	LogSize int64            `json:"log-size,omitempty"`
}

// journal appends records to a JSON-lines file. Appends from many
// requests are gathered into batches written with one write and one
// fsync: every caller waits for the fsync of its batch, so success means
// on disk, and 1,000 machines cost a few fsyncs a second, not 1,000.
type journal struct {
	f      *os.File
	size   int64 // end of the last complete line
	seq    int64
	queue  chan *append_
	commit func(record) // applied in journal order, after the fsync
	closed chan struct{}
}

type append_ struct {
	recs []record
	done chan error
}

// maxBatch bounds one batch, and so the memory a burst of requests holds.
const maxBatch = 512

// openJournal replays name (creating it if missing) through commit and
// starts the appender. A last line without its newline, which only a
// crash during a write leaves, is cut off: it was never acknowledged.
func openJournal(name string, commit func(record)) (*journal, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	j := &journal{f: f, queue: make(chan *append_, maxBatch), commit: commit, closed: make(chan struct{})}
	if err := j.replay(name); err != nil {
		f.Close()
		return nil, err
	}
	go j.loop()
	return j, nil
}

func (j *journal) replay(name string) error {
	r := bufio.NewReaderSize(j.f, 1<<16)
	line := 0
	for {
		b, err := r.ReadBytes('\n')
		if err == io.EOF {
			if len(b) > 0 {
				// Torn by a crash mid-write: never acknowledged.
				if err := j.f.Truncate(j.size); err != nil {
					return fmt.Errorf("%s: cutting the torn last line: %w", name, err)
				}
			}
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		line++
		var rec record
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("%s:%d: damaged journal line (%v); move the file away to start afresh", name, line, err)
		}
		j.size += int64(len(b))
		j.seq = max(j.seq, rec.Seq)
		j.commit(rec)
	}
	_, err := j.f.Seek(j.size, io.SeekStart)
	return err
}

// add appends recs, in order and all or none, and returns once they are
// on disk (or could not be put there).
func (j *journal) add(recs ...record) error {
	a := &append_{recs: recs, done: make(chan error, 1)}
	select {
	case j.queue <- a:
	case <-j.closed:
		return errClosed
	}
	return <-a.done
}

var errClosed = errors.New("the server is shutting down")

func (j *journal) loop() {
	var buf bytes.Buffer
	for {
		a, ok := <-j.queue
		if !ok {
			close(j.closed)
			return
		}
		batch := []*append_{a}
	more:
		for len(batch) < maxBatch {
			select {
			case a, ok := <-j.queue:
				if !ok {
					break more
				}
				batch = append(batch, a)
			default:
				break more
			}
		}
		buf.Reset()
		seq := j.seq
		for _, a := range batch {
			for i := range a.recs {
				seq++
				a.recs[i].Seq = seq
				b, _ := json.Marshal(a.recs[i]) // strings, numbers and JSON checked on the way in
				buf.Write(b)
				buf.WriteByte('\n')
			}
		}
		err := j.write(buf.Bytes())
		if err == nil {
			j.seq = seq
			for _, a := range batch {
				for _, rec := range a.recs {
					j.commit(rec)
				}
			}
		}
		for _, a := range batch {
			a.done <- err
		}
	}
}

// write appends b and syncs; on failure the file is cut back to its last
// complete line, so a full disk leaves no half line for the next append.
func (j *journal) write(b []byte) error {
	_, err := j.f.Write(b)
	if err == nil {
		err = j.f.Sync()
	}
	if err != nil {
		j.f.Truncate(j.size)
		j.f.Seek(j.size, io.SeekStart)
		return fmt.Errorf("writing the events journal: %w", err)
	}
	j.size += int64(len(b))
	return nil
}

// close stops the appender once queued appends are written; add must not
// be called any more.
func (j *journal) close() error {
	close(j.queue)
	<-j.closed
	return j.f.Close()
}
