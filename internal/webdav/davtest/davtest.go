// Package davtest is an in-memory WebDAV server for tests (GET, HEAD,
// PUT, DELETE, MOVE) that lies the way a test tells it to: the servers
// that package webdav must not believe.
package davtest

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
)

// Lie is how the server fails while answering success.
type Lie string

const (
	Honest        Lie = ""
	PutNothing    Lie = "put-nothing"    // PUT answers 201 and stores nothing
	PutTruncated  Lie = "put-truncated"  // PUT stores the first half
	Garbage       Lie = "garbage"        // HEAD and GET: the right length, other bytes
	MoveNothing   Lie = "move-nothing"   // MOVE answers 201 and moves nothing
	MoveCopy      Lie = "move-copy"      // MOVE copies and keeps the source
	DeleteNothing Lie = "delete-nothing" // DELETE answers 204 and keeps the file
	BadDigest     Lie = "bad-digest"     // Repr-Digest (with Config.Digest) is wrong
)

// Config is what the server does besides storing.
type Config struct {
	Lie Lie
	// Digest sends the content's SHA-256 as Repr-Digest on HEAD and GET.
	Digest bool
	// FailPuts answers that many PUTs with 500 (storing nothing).
	FailPuts int
	// Full answers every PUT with 507.
	Full bool
}

// Request is what the server saw of one request.
type Request struct {
	Method, Path, Authorization, Destination string
}

// Server is the fake; its URL is the root of the store.
type Server struct {
	*httptest.Server
	mu    sync.Mutex
	cfg   Config
	files map[string][]byte
	reqs  []Request
}

// New starts a server, closed when the test ends.
func New(t testing.TB, cfg Config) *Server {
	s := &Server{cfg: cfg, files: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Set changes the configuration.
func (s *Server) Set(cfg Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg = cfg
}

// Store puts b at path (as "/a/b") without a request.
func (s *Server) Store(path string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = b
}

// File returns what the server holds at path.
func (s *Server) File(path string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.files[path]
	return b, ok
}

// Files is how many files the server holds.
func (s *Server) Files() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.files)
}

// Requests returns the requests so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Count is how many requests had method.
func (s *Server) Count(method string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method {
			n++
		}
	}
	return n
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, Request{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Destination")})
	p, lie := r.URL.Path, s.cfg.Lie
	switch r.Method {
	case http.MethodHead, http.MethodGet:
		b, ok := s.files[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if lie == Garbage && len(b) > 0 {
			b = append([]byte{b[0] ^ 1}, b[1:]...)
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Header().Set("ETag", fmt.Sprintf(`"%x"`, len(b)))
		if s.cfg.Digest {
			sum := sha256.Sum256(b)
			if lie == BadDigest {
				sum[0] ^= 1
			}
			w.Header().Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":")
		}
		if r.Method == http.MethodGet {
			w.Write(b)
		}
	case http.MethodPut:
		b, _ := io.ReadAll(r.Body)
		switch {
		case s.cfg.Full:
			http.Error(w, "no space left on the store", http.StatusInsufficientStorage)
			return
		case s.cfg.FailPuts > 0:
			s.cfg.FailPuts--
			w.WriteHeader(http.StatusInternalServerError)
			return
		case lie == PutNothing:
		case lie == PutTruncated:
			s.files[p] = b[:len(b)/2]
		default:
			s.files[p] = b
		}
		w.WriteHeader(http.StatusCreated)
	case http.MethodDelete:
		if lie != DeleteNothing {
			delete(s.files, p)
		}
		w.WriteHeader(http.StatusNoContent)
	case "MOVE":
		u, err := url.Parse(r.Header.Get("Destination"))
		if err != nil {
			http.Error(w, "bad Destination", http.StatusBadRequest)
			return
		}
		b, ok := s.files[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if lie != MoveNothing {
			s.files[u.Path] = b
		}
		if lie != MoveNothing && lie != MoveCopy {
			delete(s.files, p)
		}
		w.WriteHeader(http.StatusCreated)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}
