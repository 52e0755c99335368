package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/minint/minint/internal/progress"
)

// Defaults for Options.
const (
	DefaultMaxEvent = 64 << 10
	DefaultMaxLog   = 16 << 20
	DefaultIdle     = 60 * time.Second
)

// Options configure a Server.
type Options struct {
	// Dir is the tree served and written (packages, captures, state stores).
	Dir string
	// State holds the events journal and the logs (default
	// DIR/.minint-serve, which is then neither served nor writable over
	// HTTP).
	State string
	// Token is the write token; required.
	Token string
	// DashboardUser and DashboardPassword, when the password is set,
	// protect the dashboard, its stream, its JSON and the logs with basic
	// authentication.
	DashboardUser, DashboardPassword string
	// Private are folders below Dir (e.g. "states") whose files are read
	// with the write token only: user-state stores hold people's files,
	// which anyone who can reach the server must not read.
	Private []string
	// MaxEvent bounds one POST of events, MaxLog one log, MaxPut one
	// PUT (0: DefaultMaxEvent, DefaultMaxLog, no bound).
	MaxEvent, MaxLog, MaxPut int64
	// Idle cuts a request body that sends nothing for this long
	// (default DefaultIdle).
	Idle time.Duration
	// Log gets one line per refused or failed request (nil: none).
	Log func(format string, a ...any)
}

// Server is minint serve's HTTP handler; see the package documentation.
type Server struct {
	opt      Options
	root     *os.Root // Dir
	logs     *os.Root // State/logs
	private  string   // State's path below Dir, "" when outside
	j        *journal
	once     sync.Once
	closeErr error

	mu   sync.Mutex
	rows map[string]*Row
	subs map[*subscriber]bool
}

// New opens (or creates) the state directory, replays its journal and
// returns the server. Close it to flush and release the journal.
func New(o Options) (*Server, error) {
	if o.Token == "" {
		return nil, errors.New("a write token is required")
	}
	if o.Dir == "" {
		return nil, errors.New("no directory to serve")
	}
	if o.State == "" {
		o.State = filepath.Join(o.Dir, ".minint-serve")
	}
	if o.MaxEvent == 0 {
		o.MaxEvent = DefaultMaxEvent
	}
	if o.MaxLog == 0 {
		o.MaxLog = DefaultMaxLog
	}
	if o.Idle == 0 {
		o.Idle = DefaultIdle
	}
	s := &Server{opt: o, rows: map[string]*Row{}, subs: map[*subscriber]bool{}}
	var err error
	if s.root, err = os.OpenRoot(o.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(o.State, "logs"), 0o700); err != nil {
		return nil, err
	}
	if s.logs, err = os.OpenRoot(filepath.Join(o.State, "logs")); err != nil {
		return nil, err
	}
	dir, err1 := filepath.Abs(o.Dir)
	state, err2 := filepath.Abs(o.State)
	if rel, err := filepath.Rel(dir, state); err1 == nil && err2 == nil && err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		s.private = filepath.ToSlash(rel)
	}
	if s.j, err = openJournal(filepath.Join(o.State, "events.jsonl"), s.commit); err != nil {
		return nil, err
	}
	return s, nil
}

// Close stops taking events (call it after the HTTP server has stopped)
// and closes the journal.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.closeErr = s.j.close()
		s.root.Close()
		s.logs.Close()
	})
	return s.closeErr
}

// Rows returns the machines' rows in dashboard order.
func (s *Server) Rows() []Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := make([]Row, 0, len(s.rows))
	for _, r := range s.rows {
		rows = append(rows, *r)
	}
	sortRows(rows)
	return rows
}

// commit applies a record that is on disk and tells the subscribers.
func (s *Server) commit(rec record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rows[rec.Machine.ID]
	if r == nil {
		r = &Row{}
		s.rows[rec.Machine.ID] = r
	}
	r.apply(rec)
	for sub := range s.subs {
		sub.dirty[rec.Machine.ID] = true
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
}

// ServeHTTP routes: / the dashboard, /status… events, logs and the
// stream, everything else the file tree.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		s.dashboardOnly(w, r, s.page)
	case p == "/status":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			s.fail(w, r, http.StatusMethodNotAllowed, "POST events or a log here")
			return
		}
		if !s.writer(w, r) {
			return
		}
		if r.Header.Get("X-Minint-Log") != "" {
			s.postLog(w, r)
		} else {
			s.postEvents(w, r)
		}
	case strings.HasPrefix(p, "/status/"):
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			s.fail(w, r, http.StatusMethodNotAllowed, "read-only")
			return
		}
		switch rest := strings.TrimPrefix(p, "/status/"); {
		case rest == "machines":
			s.dashboardOnly(w, r, s.machines)
		case rest == "stream":
			s.dashboardOnly(w, r, s.stream)
		case rest == "app.js":
			s.dashboardOnly(w, r, serveAsset("app.js", "text/javascript; charset=utf-8"))
		case strings.HasPrefix(rest, "logs/"):
			s.dashboardOnly(w, r, func(w http.ResponseWriter, r *http.Request) { s.getLog(w, r, strings.TrimPrefix(rest, "logs/")) })
		default:
			s.fail(w, r, http.StatusNotFound, "no such page")
		}
	default:
		s.files(w, r)
	}
}

// fail answers with a one-line plain-text error and logs it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if s.opt.Log != nil {
		s.opt.Log("%s %s from %s: %d %s", r.Method, r.URL.Path, r.RemoteAddr, code, msg)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// writer checks the write token: the basic-auth password (any user
// name) or a bearer token.
func (s *Server) writer(w http.ResponseWriter, r *http.Request) bool {
	got, ok := "", false
	if _, pw, basic := r.BasicAuth(); basic {
		got, ok = pw, true
	} else if t, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); bearer {
		got, ok = t, true
	}
	if ok && same(got, s.opt.Token) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="minint serve: write token as password"`)
	if !ok {
		s.fail(w, r, http.StatusUnauthorized, "writes need the write token: http://:TOKEN@host/… (basic auth) or Authorization: Bearer TOKEN")
	} else {
		s.fail(w, r, http.StatusUnauthorized, "wrong write token")
	}
	return false
}

// same compares secrets in constant time (of their hashes, so that the
// length does not show either).
func same(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// dashboardOnly runs h when the dashboard's credentials (if any) are given.
func (s *Server) dashboardOnly(w http.ResponseWriter, r *http.Request, h http.HandlerFunc) {
	if s.opt.DashboardPassword != "" {
		u, pw, ok := r.BasicAuth()
		if !ok || !same(u, s.opt.DashboardUser) || !same(pw, s.opt.DashboardPassword) {
			w.Header().Set("WWW-Authenticate", `Basic realm="minint dashboard"`)
			s.fail(w, r, http.StatusUnauthorized, "the dashboard needs its user name and password")
			return
		}
	}
	h(w, r)
}

// machine reads the X-Minint-Machine header.
func (s *Server) machine(w http.ResponseWriter, r *http.Request) (progress.Machine, bool) {
	h := r.Header.Get(progress.MachineHeader)
	m, err := progress.ParseMachine(h)
	switch {
	case h == "":
		s.fail(w, r, http.StatusBadRequest, "no %s header: say which machine this is (id=SERIAL-OR-MAC&…)", progress.MachineHeader)
	case err != nil:
		s.fail(w, r, http.StatusBadRequest, "malformed %s header: %v", progress.MachineHeader, err)
	case m.ID == "":
		s.fail(w, r, http.StatusBadRequest, "%s header without id=", progress.MachineHeader)
	case len(h) > 1024 || len(m.ID) > 128:
		s.fail(w, r, http.StatusBadRequest, "%s header too long", progress.MachineHeader)
	default:
		return m, true
	}
	return m, false
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// postEvents takes one event, or several as JSON lines: all are stored or
// none (a malformed one refuses the whole request).
func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) {
	m, ok := s.machine(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(s.body(w, r, s.opt.MaxEvent))
	if err != nil {
		s.bodyError(w, r, err, "events")
		return
	}
	var events []json.RawMessage
	for i, line := range bytes.Split(body, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e struct {
			Kind *string `json:"event"`
		}
		if err := json.Unmarshal(line, &e); err != nil {
			s.fail(w, r, http.StatusBadRequest, "malformed event on line %d: %v", i+1, err)
			return
		}
		if e.Kind == nil || *e.Kind == "" {
			s.fail(w, r, http.StatusBadRequest, "malformed event on line %d: no \"event\" kind", i+1)
			return
		}
		var c bytes.Buffer
		json.Compact(&c, line)
		events = append(events, c.Bytes())
	}
	if len(events) == 0 {
		s.fail(w, r, http.StatusBadRequest, "no event in the request")
		return
	}
	now, ip := time.Now().UTC(), remoteIP(r)
	recs := make([]record, len(events))
	for i, e := range events {
		recs[i] = record{At: now, Machine: m, Remote: ip, Event: e}
	}
	if err := s.j.add(recs...); err != nil {
		s.fail(w, r, http.StatusInsufficientStorage, "not stored: %v", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// body limits a request body to limit bytes and cuts it when it sends
// nothing for Idle.
func (s *Server) body(w http.ResponseWriter, r *http.Request, limit int64) io.Reader {
	var rd io.Reader = r.Body
	if limit > 0 {
		rd = http.MaxBytesReader(w, r.Body, limit)
	}
	return &idleReader{r: rd, rc: http.NewResponseController(w), idle: s.opt.Idle}
}

// idleReader moves the connection's read deadline on before every read:
// a body that stalls is cut, one that flows is never cut for its length.
type idleReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleReader) Read(p []byte) (int, error) {
	b.rc.SetReadDeadline(time.Now().Add(b.idle))
	return b.r.Read(p)
}

// bodyError answers a request whose body could not be read.
func (s *Server) bodyError(w http.ResponseWriter, r *http.Request, err error, what string) {
	var tooLarge *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &tooLarge):
		s.fail(w, r, http.StatusRequestEntityTooLarge, "%s larger than %d bytes refused", what, tooLarge.Limit)
	case errors.As(err, &ne) && ne.Timeout():
		s.fail(w, r, http.StatusRequestTimeout, "%s: nothing received for %s", what, s.opt.Idle)
	default:
		s.fail(w, r, http.StatusBadRequest, "%s: %v", what, err)
	}
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// machineDir is a file name for a machine ID: readable, and unique
// through a hash of the ID (two IDs may read the same once cleaned).
func machineDir(id string) string {
	h := sha256.Sum256([]byte(id))
	clean := unsafeChars.ReplaceAllString(id, "_")
	if len(clean) > 64 {
		clean = clean[:64]
	}
	return strings.TrimLeft(clean, ".") + "-" + hex.EncodeToString(h[:4])
}

// postLog stores a failure log: streamed to a temporary file (at most
// MaxLog bytes, in bounded memory), synced, renamed, then recorded.
func (s *Server) postLog(w http.ResponseWriter, r *http.Request) {
	m, ok := s.machine(w, r)
	if !ok {
		return
	}
	dir := machineDir(m.ID)
	if err := s.logs.MkdirAll(dir, 0o700); err != nil {
		s.fail(w, r, http.StatusInternalServerError, "log: %v", err)
		return
	}
	name := dir + "/" + time.Now().UTC().Format("20060102T150405.000000000Z") + ".log"
	n, err := writeFile(s.logs, name, s.body(w, r, s.opt.MaxLog))
	if err != nil {
		if errors.Is(err, errStore) {
			s.fail(w, r, http.StatusInsufficientStorage, "log not stored: %v", err)
		} else {
			s.bodyError(w, r, err, "log")
		}
		return
	}
	if err := s.j.add(record{At: time.Now().UTC(), Machine: m, Remote: remoteIP(r), Log: name, LogSize: n}); err != nil {
		s.logs.Remove(name)
		s.fail(w, r, http.StatusInsufficientStorage, "log not recorded: %v", err)
		return
	}
	w.Header().Set("Location", "/status/logs/"+name)
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) getLog(w http.ResponseWriter, r *http.Request, name string) {
	rel, err := cleanPath(name)
	if err != nil || rel == "" {
		s.fail(w, r, http.StatusBadRequest, "bad log name")
		return
	}
	f, err := s.logs.Open(rel)
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "no such log")
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		s.fail(w, r, http.StatusNotFound, "no such log")
		return
	}
	// What a machine wrote is shown as text, never run as a page.
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

func (s *Server) machines(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(s.Rows())
}

// Serve answers HTTP on ln until ctx ends, then shuts down gracefully
// (requests in flight finish) and closes the server.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		s.closeStreams()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = hs.Shutdown(sctx)
		cancel()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, s.Close())
}
