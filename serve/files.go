package serve

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
)

// errStore wraps failures of the server's own disk (as opposed to the
// request's body).
var errStore = errors.New("storage")

// cleanPath turns a URL path into a path relative to a root: "" for the
// root itself. A "." or ".." segment is refused rather than resolved: no
// client of minint sends one, and an attacker would.
func cleanPath(p string) (string, error) {
	var segs []string
	for _, seg := range strings.Split(p, "/") {
		switch {
		case seg == "":
		case seg == "." || seg == "..":
			return "", fmt.Errorf("path %q refused: no . or .. segments", p)
		case strings.ContainsRune(seg, 0):
			return "", fmt.Errorf("path %q refused: NUL", p)
		default:
			segs = append(segs, seg)
		}
	}
	return strings.Join(segs, "/"), nil
}

// writeFile writes r to name below root through a temporary file in the
// same directory, synced and then renamed: name holds either what it held
// before or all of r, never a part. Failures of the disk wrap errStore;
// failures of r are returned as they are.
func writeFile(root *os.Root, name string, r io.Reader) (int64, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	dir, base := path.Split(name)
	tmp := dir + "." + base + "." + hex.EncodeToString(rnd[:]) + ".tmp"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errStore, err)
	}
	fw := &fileWriter{f: f}
	n, err := io.Copy(fw, r)
	var werr error
	switch {
	case fw.err != nil:
		werr, err = fw.err, nil
	case err == nil:
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil && err == nil {
		werr = cerr
	}
	if werr == nil && err == nil {
		werr = root.Rename(tmp, name)
	}
	if werr == nil && err == nil {
		werr = syncDir(root, dir)
	}
	if werr != nil || err != nil {
		root.Remove(tmp)
	}
	if werr != nil {
		return n, fmt.Errorf("%w: %v", errStore, werr)
	}
	return n, err
}

// fileWriter keeps a write error apart from a read error in io.Copy
// (and hides *os.File's ReadFrom, which would mix them).
type fileWriter struct {
	f   *os.File
	err error
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

func syncDir(root *os.Root, dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := root.Open(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// files serves and stores the tree under Dir.
func (s *Server) files(w http.ResponseWriter, r *http.Request) {
	rel, err := cleanPath(r.URL.Path)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "%v", err)
		return
	}
	if s.private != "" && (rel == s.private || strings.HasPrefix(rel, s.private+"/")) {
		s.fail(w, r, http.StatusForbidden, "the server's own state is not served")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if s.isPrivate(rel) && !s.writer(w, r) {
			return
		}
		s.get(w, r, rel)
		return
	case http.MethodOptions:
		w.Header().Set("Allow", "GET, HEAD, PUT, MOVE, DELETE, MKCOL, OPTIONS")
		w.Header().Set("DAV", "1")
		return
	case http.MethodPut, "MOVE", http.MethodDelete, "MKCOL":
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, MOVE, DELETE, MKCOL, OPTIONS")
		s.fail(w, r, http.StatusMethodNotAllowed, "method %s not supported", r.Method)
		return
	}
	if !s.writer(w, r) {
		return
	}
	if rel == "" {
		s.fail(w, r, http.StatusForbidden, "the root itself cannot be written")
		return
	}
	switch r.Method {
	case http.MethodPut:
		s.put(w, r, rel)
	case "MOVE":
		s.move(w, r, rel)
	case http.MethodDelete:
		s.delete(w, r, rel)
	case "MKCOL":
		s.mkcol(w, r, rel)
	}
}

// isPrivate says whether rel is in one of Options.Private.
func (s *Server) isPrivate(rel string) bool {
	for _, p := range s.opt.Private {
		p = strings.Trim(p, "/")
		if p == "" || rel == p || strings.HasPrefix(rel, p+"/") {
			return true
		}
	}
	return false
}

// etag is nginx's: modification time and size in hex. A rename keeps
// both, which lets a client see that a MOVE kept the same file.
func etag(fi fs.FileInfo) string {
	return fmt.Sprintf(`"%x-%x"`, fi.ModTime().Unix(), fi.Size())
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, rel string) {
	name := rel
	if name == "" {
		name = "."
	}
	f, err := s.root.Open(name)
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "not found")
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "not found")
		return
	}
	if !fi.Mode().IsRegular() {
		s.fail(w, r, http.StatusForbidden, "not a file")
		return
	}
	w.Header().Set("ETag", etag(fi))
	w.Header().Set("Accept-Ranges", "bytes")
	http.ServeContent(w, r, path.Base(rel), fi.ModTime(), f)
}

func (s *Server) put(w http.ResponseWriter, r *http.Request, rel string) {
	if fi, err := s.root.Stat(rel); err == nil && fi.IsDir() {
		s.fail(w, r, http.StatusConflict, "%s is a collection", rel)
		return
	}
	if dir := path.Dir(rel); dir != "." {
		if err := s.root.MkdirAll(dir, 0o755); err != nil {
			s.fail(w, r, http.StatusConflict, "cannot create the collection %s: %v", dir, err)
			return
		}
	}
	_, existed := s.root.Stat(rel)
	if _, err := writeFile(s.root, rel, s.body(w, r, s.opt.MaxPut)); err != nil {
		if errors.Is(err, errStore) {
			s.fail(w, r, http.StatusInsufficientStorage, "not stored: %v", err)
		} else {
			s.bodyError(w, r, err, "upload")
		}
		return
	}
	if existed == nil {
		w.WriteHeader(http.StatusNoContent)
	} else {
		w.WriteHeader(http.StatusCreated)
	}
}

func (s *Server) move(w http.ResponseWriter, r *http.Request, rel string) {
	d, err := url.Parse(r.Header.Get("Destination"))
	if err != nil || r.Header.Get("Destination") == "" {
		s.fail(w, r, http.StatusBadRequest, "MOVE needs a Destination header with a URL")
		return
	}
	if d.Host != "" && d.Host != r.Host {
		s.fail(w, r, http.StatusBadGateway, "MOVE to another server (%s) refused", d.Host)
		return
	}
	to, err := cleanPath(d.Path)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "Destination: %v", err)
		return
	}
	if to == "" || (s.private != "" && (to == s.private || strings.HasPrefix(to, s.private+"/"))) {
		s.fail(w, r, http.StatusForbidden, "Destination %s cannot be written", d.Path)
		return
	}
	if _, err := s.root.Lstat(rel); err != nil {
		s.fail(w, r, http.StatusNotFound, "nothing to move at %s", rel)
		return
	}
	_, exists := s.root.Lstat(to)
	if exists == nil && strings.EqualFold(r.Header.Get("Overwrite"), "F") {
		s.fail(w, r, http.StatusPreconditionFailed, "%s exists and Overwrite: F", to)
		return
	}
	if dir := path.Dir(to); dir != "." {
		if err := s.root.MkdirAll(dir, 0o755); err != nil {
			s.fail(w, r, http.StatusConflict, "cannot create the collection %s: %v", dir, err)
			return
		}
	}
	if err := s.root.Rename(rel, to); err != nil {
		s.fail(w, r, http.StatusConflict, "MOVE: %v", err)
		return
	}
	syncDir(s.root, path.Dir(to)+"/")
	if exists == nil {
		w.WriteHeader(http.StatusNoContent)
	} else {
		w.WriteHeader(http.StatusCreated)
	}
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, rel string) {
	fi, err := s.root.Lstat(rel)
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "not found")
		return
	}
	if fi.IsDir() {
		err = s.root.RemoveAll(rel)
	} else {
		err = s.root.Remove(rel)
	}
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "DELETE: %v", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) mkcol(w http.ResponseWriter, r *http.Request, rel string) {
	if r.ContentLength > 0 {
		s.fail(w, r, http.StatusUnsupportedMediaType, "MKCOL with a body is not supported")
		return
	}
	if _, err := s.root.Lstat(rel); err == nil {
		s.fail(w, r, http.StatusMethodNotAllowed, "%s exists", rel)
		return
	}
	if err := s.root.Mkdir(rel, 0o755); err != nil {
		s.fail(w, r, http.StatusConflict, "MKCOL: %v", err)
		return
	}
	w.WriteHeader(http.StatusCreated)
}
