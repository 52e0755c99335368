package pe

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// statusPoster sends events to a status URL: every JSON line written to it
// becomes one POST (Content-Type application/json) of that object. Posting
// happens in the background and never slows or fails the deployment: when
// the server is slow or away, events queue up to a bound and then are
// dropped (and counted).
type statusPoster struct {
	url     string
	client  *http.Client
	queue   chan []byte
	done    chan struct{}
	mu      sync.Mutex
	dropped int
	failed  int
	closed  bool
}

// newStatusPoster starts a poster for url (client nil: default with a 10s
// timeout).
func newStatusPoster(url string, client *http.Client) *statusPoster {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	p := &statusPoster{url: url, client: client, queue: make(chan []byte, 1024), done: make(chan struct{})}
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
	req, err := http.NewRequestWithContext(ctx, "POST", p.url, bytes.NewReader(body))
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
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s", p.url, resp.Status)
	}
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
