package pe

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/minint/minint/internal/httpx"
)

// statusIdle bounds how long one status request may go without progress.
const statusIdle = 10 * time.Second

// statusPoster sends events to a status URL: every JSON line written to it
// becomes one POST (Content-Type application/json) of that object. Posting
// happens in the background and never slows or fails the deployment: when
// the server is slow or away, events queue up to a bound and then are
// dropped (and counted).
type statusPoster struct {
	url     string
	client  *httpx.Client
	queue   chan []byte
	done    chan struct{}
	mu      sync.Mutex
	dropped int
	failed  int
	closed  bool
}

// newStatusPoster starts a poster for url with the limits of client (nil:
// httpx's defaults), and an idle limit of at most statusIdle: a collector
// that stops answering must not hold the queue for a minute per event.
func newStatusPoster(url string, client *httpx.Client) *statusPoster {
	c := httpx.Client{}
	if client != nil {
		c = *client
	}
	if c.Idle == 0 || c.Idle > statusIdle {
		c.Idle = statusIdle
	}
	p := &statusPoster{url: url, client: &c, queue: make(chan []byte, 1024), done: make(chan struct{})}
	go p.loop()
	return p
}

func (p *statusPoster) loop() {
	defer close(p.done)
	for b := range p.queue {
		if err := p.post(context.Background(), "application/json", b, nil); err != nil {
			p.mu.Lock()
			p.failed++
			p.mu.Unlock()
		}
	}
}

func (p *statusPoster) post(ctx context.Context, ctype string, body []byte, hdr map[string]string) error {
	req, err := httpx.NewRequest(ctx, "POST", p.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := p.client.Do(req)
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

// UploadLog POSTs a whole log (text/plain, header X-Minint-Log: failure).
func (p *statusPoster) UploadLog(ctx context.Context, log []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return p.post(ctx, "text/plain; charset=utf-8", log, map[string]string{"X-Minint-Log": "failure"})
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
