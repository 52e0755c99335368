package pe

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/progress"
)

// statusIdle bounds how long one status request may go without progress.
const statusIdle = 10 * time.Second

// statusPoster sends events to a status URL: every JSON line written to it
// becomes one POST (Content-Type application/json) of that object, with
// the machine named in the X-Minint-Machine header (progress.Machine), so
// that a collector such as `minint serve` files it under the right row.
// Posting happens in the background and never slows or fails the
// deployment: a post that fails transiently is retried a few times, and
// when the server is slow or away, events queue up to a bound and then
// are dropped (and counted).
type statusPoster struct {
	url     string
	machine string // the X-Minint-Machine header
	client  *httpx.Client
	queue   chan []byte // nil: a Flush marker
	flushed chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	dropped int
	failed  int
	closed  bool
}

// newStatusPoster starts a poster for url with the limits of client (nil:
// httpx's defaults), and an idle limit of at most statusIdle: a collector
// that stops answering must not hold the queue for a minute per event.
func newStatusPoster(url string, client *httpx.Client, m progress.Machine) *statusPoster {
	c := httpx.Client{}
	if client != nil {
		c = *client
	}
	if c.Idle == 0 || c.Idle > statusIdle {
		c.Idle = statusIdle
	}
	p := &statusPoster{url: url, machine: m.Header(), client: &c, queue: make(chan []byte, 1024), flushed: make(chan struct{}, 1), done: make(chan struct{})}
	go p.loop()
	return p
}

func (p *statusPoster) loop() {
	defer close(p.done)
	// Events are retried briefly: a lost "done" would leave the machine
	// running forever on a dashboard, but a collector that is away must
	// not hold the queue for minutes.
	c := *p.client
	c.Tries, c.Backoff, c.MaxBackoff = min(or(c.Tries, 4), 4), 500*time.Millisecond, 2*time.Second
	c.Log = nil
	for b := range p.queue {
		if b == nil {
			p.flushed <- struct{}{}
			continue
		}
		err := c.Retry(context.Background(), "POST "+p.url, func() error {
			return p.post(context.Background(), &c, "application/json", b, nil)
		})
		if err != nil {
			p.mu.Lock()
			p.failed++
			p.mu.Unlock()
		}
	}
}

func or(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func (p *statusPoster) post(ctx context.Context, c *httpx.Client, ctype string, body []byte, hdr map[string]string) error {
	req, err := httpx.NewRequest(ctx, "POST", p.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	if p.machine != "" {
		req.Header.Set(progress.MachineHeader, p.machine)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return httpx.NewStatusError(resp)
	}
	resp.Body.Close()
	return nil
}

// Write queues each complete line of b as one event.
func (p *statusPoster) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return len(b), nil
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		select {
		case p.queue <- append([]byte(nil), line...):
		default:
			p.dropped++
		}
	}
	return len(b), nil
}

// UploadLog POSTs a whole log (text/plain, header X-Minint-Log: failure),
// retrying transient failures with the client's backoff for up to a
// minute: the log is what the technician at the server needs most.
func (p *statusPoster) UploadLog(ctx context.Context, log []byte) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return p.client.Retry(ctx, "POST "+p.url+" (failure log)", func() error {
		return p.post(ctx, p.client, "text/plain; charset=utf-8", log, map[string]string{"X-Minint-Log": "failure"})
	})
}

// Flush waits, at most timeout, until what was queued before it is sent
// (or given up): before a step reboots the machine, which would take the
// queue with it.
func (p *statusPoster) Flush(timeout time.Duration) {
	// Close is called by the same goroutine as Flush (the runner's), so
	// the queue cannot close under the send below.
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return
	}
	select {
	case <-p.flushed: // a marker an earlier Flush gave up on
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case p.queue <- nil:
	case <-t.C:
		return
	}
	select {
	case <-p.flushed:
	case <-t.C:
	}
}

// Close sends what is queued, waiting at most a few seconds, and reports
// how many events were dropped or failed.
func (p *statusPoster) Close() (dropped, failed int) {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.queue)
	}
	p.mu.Unlock()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped, p.failed
}
