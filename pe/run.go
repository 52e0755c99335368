package pe

import (
	"context"
	"errors"
	"fmt"
	"github.com/minint/minint/bytesize"
	"github.com/minint/minint/internal/child"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/minint/minint/answer"
	"github.com/minint/minint/internal/blockcache"
	"github.com/minint/minint/internal/durable"
	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/plural"
	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/manifest"
	"github.com/minint/minint/sequence"
	"github.com/minint/minint/sign"
	"golang.org/x/sys/unix"
)

func unixSync() { unix.Sync() }

// rootPart is the partition holding the system (see RootPartition).
func rootPart(parts []Part) (Part, bool) {
	for _, p := range parts {
		if p.Name == "root" {
			return p, true
		}
	}
	for _, p := range parts {
		if p.FS == "ext4" {
			return p, true
		}
	}
	return Part{}, false
}

func (r *runner) mount(s *sequence.Mount) error {
	if s.Existing {
		return r.mountExisting(s)
	}
	return r.mountRoot(s.Target)
}

func (r *runner) mountRoot(target string) error {
	stage := filepath.Join(target, strings.TrimPrefix(answer.Dir, "/"))
	if r.st.Target == target && r.staging == stage {
		return nil // mounted after formatting, or when the journal was found
	}
	r.unmountAll()
	root, ok := rootPart(r.st.Parts)
	if !ok {
		return errors.New("no root partition (name one root, or give one fs: ext4)")
	}
	un, err := r.env.Backend.Mount(r.ctx, root, target)
	if err != nil {
		return err
	}
	r.st.unmount = append(r.st.unmount, un)
	r.st.Target = target
	// The staging folder exists from now on; the journal kept in memory
	// so far is written there.
	return r.adopt(stage)
}

func (r *runner) fetch(s *sequence.Fetch) error {
	if len(r.env.PublicKey) == 0 {
		return fmt.Errorf("%w: this PE was built without a package signing key, so it accepts no package", sign.ErrSignature)
	}
	ctx, cancel := context.WithTimeout(r.ctx, time.Duration(s.Timeout))
	defer cancel()
	c := *r.client
	c.Tries = s.Retries + 1
	base := s.Dir()
	// The manifest and its signature come from the same place: a file
	// on the medium (no client) or a URL.
	src, client := s.Manifest, &c.Client
	if p, ok := strings.CutPrefix(s.Manifest, "medium:"); ok {
		if r.env.MediumDir == "" {
			return errors.New("the boot medium is not mounted in this PE")
		}
		src, client = filepath.Join(r.env.MediumDir, p), nil
	}
	mb, err := readSource(ctx, client, src, manifest.MaxSize)
	if err != nil {
		return err
	}
	sig, err := readSignature(ctx, client, src, r.rep.Printf)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	m, err := manifest.Verify(mb, sig, r.env.PublicKey, manifest.VerifyOptions{Name: s.Package, MinVersion: string(s.MinVersion)})
	if err != nil {
		return fmt.Errorf("%s: %w", s.Manifest, err)
	}
	warnLegacy(m.Signature, s.Manifest, r.rep.Printf)
	version := ""
	if m.PackageVersion != "" {
		version = " version " + m.PackageVersion
	}
	r.rep.Printf("  manifest %q%s verified (key %s), %s", m.Name, version, sign.KeyID(r.env.PublicKey), plural.Count(len(m.Files), "file"))
	if m.Image == nil {
		return fmt.Errorf("%w: %s names no image to apply", manifest.ErrFormat, s.Manifest)
	}
	e, _ := m.File(m.Image.File)
	ref := &ImageRef{Entry: *e, Index: m.Image.Index}
	mode := s.Mode
	if mode == "auto" && !strings.HasPrefix(base, "medium:") {
		mode = r.stageOrStream(e)
		if _, next := r.followedByApply(s); mode == "pipeline" && !next {
			mode = "stage"
		}
	}
	task := r.rep.Start("fetch "+path.Base(e.Path), e.Size, "bytes")
	pipelined := false
	switch {
	case strings.HasPrefix(base, "medium:"):
		p := filepath.Join(r.env.MediumDir, strings.TrimPrefix(base, "medium:"), filepath.FromSlash(e.Path))
		ref.Path = p
		if r.env.bench.known() {
			what := "WITHOUT verifying it"
			if r.env.bench == BenchUnhashedMedium {
				what = "WITHOUT verifying it or the SHA-1 of its files"
			}
			msg := fmt.Sprintf("BENCHMARK (minint.bench=%s): %s is applied %s; never deploy this way", r.env.bench, e.Path, what)
			r.rep.Printf("  warning: %s", msg)
			r.rep.Emit(progress.Event{Kind: "warning", Op: s.Name, Msg: msg})
			ref.Verified = true
			break
		}
		if _, next := r.followedByApply(s); next && len(e.Chunks) > 0 {
			// No pass of its own: apply-image verifies each chunk as it
			// reads it, and every chunk before it is done.
			var cr *manifest.ChunkReader
			if cr, err = manifest.OpenChunks(p, e, 0); err == nil {
				cr.Close()
				task.Set(e.Size, 0)
				r.rep.Printf("  %s is verified while it is applied (%s before use, the whole file before the steps after apply-image)", e.Path, eachChunk(e))
			}
			break
		}
		err = manifest.Check(ctx, p, e, task.Callback())
		ref.Verified = err == nil
	case mode == "stream":
		ref.URL = base + "/" + e.Path
		_, err = c.OpenFile(ctx, ref.URL, e, 0)
		if err == nil {
			task.Set(e.Size, 0)
			r.rep.Printf("  %s will be read straight from the server, %s verified", e.Path, eachChunk(e))
		} else if errors.Is(err, httpx.ErrNoRange) && s.Mode == "auto" {
			err = fmt.Errorf("%w, so the image must be staged whole first, but the target has no room for it (or is not mounted)", err)
		}
	case mode == "pipeline":
		// Verified once settle has seen the download end well, which
		// every step after apply-image waits for.
		ref.Path, err = r.startPipeline(ctx, &c, s, base+"/"+e.Path, e, task)
		pipelined, ref.Verified = err == nil, err == nil
	default:
		if r.staging == "" {
			err = errors.New("no staging folder to download into (mount the target first)")
			break
		}
		dest := filepath.Join(r.staging, path.Base(e.Path))
		err = c.Download(ctx, base+"/"+e.Path, dest, e, task.Callback())
		ref.Path, ref.Verified = dest, err == nil
	}
	if !pipelined {
		task.Finish(err) // else settle finishes it
	}
	if err != nil {
		return err
	}
	if r.staging != "" {
		durable.WriteFile(filepath.Join(r.staging, manifest.FileName), mb, 0o644)
		durable.WriteFile(filepath.Join(r.staging, manifest.SignatureName), sig, 0o644)
	}
	r.st.Image = ref
	return nil
}

// stageOrStream decides mode auto: when the target has room for the image
// plus a margin (the applied files need space too, but staged copies can
// be deleted by a later run step), pipeline when the package has chunk
// hashes (see pipeline.go), else stage; stream when there is no room and
// the package allows it.
func (r *runner) stageOrStream(e *manifest.Entry) string {
	if r.staging == "" {
		return "stream"
	}
	var st unix.Statfs_t
	if err := unix.Statfs(r.staging, &st); err != nil {
		return "stage"
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	// A download from an earlier boot is continued, not duplicated: its
	// blocks count as free (else a resumed run could switch to stream).
	dest := filepath.Join(r.staging, path.Base(e.Path))
	for _, p := range []string{dest, dest + ".part"} {
		var fs unix.Stat_t
		if unix.Stat(p, &fs) == nil {
			free += fs.Blocks * 512
		}
	}
	if free >= e.Size+e.Size/10+64<<20 && len(e.Chunks) > 0 {
		return "pipeline"
	}
	if free >= e.Size+e.Size/10+64<<20 || len(e.Chunks) == 0 {
		return "stage"
	}
	r.rep.Printf("  only %s free on the target for a %s image: reading it straight from the server", bytesize.Size(free).Human(), bytesize.Size(e.Size).Human())
	return "stream"
}

func (r *runner) apply(s *sequence.ApplyImage) error {
	img := r.st.Image
	if img == nil {
		return errors.New("no verified image (fetch step)")
	}
	index := img.Index
	if s.Index > 0 {
		index = s.Index
	}
	var ra io.ReaderAt
	var chunks *manifest.ChunkReader
	size := img.Entry.Size
	p := r.pending
	if p != nil && p.path == img.Path {
		// The chunk-verified bytes of the download under way, in 4 MiB
		// reads with one ahead: the WIM's many small reads straight
		// from the Transfer (a lock and a pread each) made a two-vCPU
		// pipelined deployment take 11% longer and 8% more CPU. A
		// read-ahead waits like any reader, until its chunk arrives or
		// the transfer fails, and bc.Close waits for it.
		bc := inBlocks(p.tr, size)
		defer bc.Close()
		ra = bc
	} else if img.URL != "" {
		// Straight from the server (mode: stream), in 4 MiB reads with
		// one ahead like the download above. Read chunk by chunk as
		// the WIM asked, the apply waited for every Range request, and
		// a two-vCPU deployment took 1.1 times as long as a pipelined
		// one (docs/benchmarks.md). The blocks hold what the apply
		// reads again; the File keeps only the chunk a block shares
		// with the next.
		f, err := r.client.OpenFile(r.ctx, img.URL, &img.Entry, 2*img.Entry.ChunkSize)
		if err != nil {
			return err
		}
		bc := inBlocks(f, size)
		defer bc.Close()
		ra = bc
	} else if !img.Verified && len(img.Entry.Chunks) > 0 {
		var err error
		if chunks, err = manifest.OpenChunks(img.Path, &img.Entry, chunkCache); err != nil {
			return err
		}
		defer chunks.Close()
		ra = chunks
	} else {
		if !img.Verified {
			task := r.rep.Start("verify "+path.Base(img.Path), img.Entry.Size, "bytes")
			err := manifest.Check(r.ctx, img.Path, &img.Entry, task.Callback())
			task.Finish(err)
			if err != nil {
				return err
			}
		}
		f, err := os.Open(img.Path)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.Size() != size {
			return fmt.Errorf("%w: %s is %d bytes, verified as %d", manifest.ErrSize, img.Path, fi.Size(), size)
		}
		ra = f
		if r.onMedium(img.Path) {
			// In 4 MiB reads with one ahead, as from a ChunkReader: the
			// WIM's small reads straight from a CD made the apply 23%
			// slower in a one-vCPU PE. (A staged download, a file in
			// the page cache, is read in place: in blocks it measured
			// slower under load and no faster on a quiet machine.)
			bc := inBlocks(f, size)
			defer bc.Close()
			ra = bc
		}
	}
	// Whatever an interrupted earlier apply left is removed first, so a
	// redo starts from the same empty root (the staging folder stays).
	if err := r.env.Backend.Clean(r.ctx, r.st.Target); err != nil {
		return fmt.Errorf("cleaning the target before applying: %w", err)
	}
	req := ApplyRequest{Image: ra, Size: size, Index: index, Dir: r.st.Target}
	if r.env.bench.known() && r.onMedium(img.Path) {
		req.BenchNoHash = r.env.bench == BenchUnhashedMedium
	} else {
		// Every byte ra returns was checked against the signed manifest
		// that carries the table: chunk by chunk (ChunkReader, the
		// pipeline, a stream) or whole before it was opened.
		req.Checksums = img.Entry.WIMChecksums
		if req.Checksums != nil {
			r.rep.Printf("  each file's data is checked against the signed manifest's XXH64 (%s), not the WIM's SHA-1s", plural.Count(len(req.Checksums)/8, "blob"))
		}
	}
	task := r.rep.Start(fmt.Sprintf("apply image %d", index), 0, "bytes")
	req.Progress = task.Callback()
	err := r.env.Backend.Apply(r.ctx, req)
	task.Finish(err)
	if p != nil && (err == nil || p.tr.Err() != nil) {
		// Done only once the download verified whole; a failed download
		// is the cause of a failed apply, and is what gets reported.
		if serr := r.settle(); serr != nil {
			return serr
		}
	}
	if err != nil {
		return err
	}
	if chunks != nil {
		// The gate of everything after the apply: the chunks the apply
		// did not read are checked too (see manifest.ChunkReader).
		task := r.rep.Start("verify "+path.Base(img.Path), size, "bytes")
		err := chunks.Complete(r.ctx, task.Callback())
		task.Finish(err)
		if err != nil {
			return err
		}
		r.rep.Printf("  %s verified whole: every chunk matches the signed manifest, %s hashed", img.Entry.Path, bytesize.Size(chunks.Hashed()).Human())
	}
	unixSync()
	return nil
}

// eachChunk says how e's chunks are checked, for the log: "each 4 MiB
// chunk (blake3)".
func eachChunk(e *manifest.Entry) string {
	return fmt.Sprintf("each %s chunk (%s)", bytesize.Size(e.ChunkSize), e.ChunkHashName())
}

// chunkCache bounds the verified chunks of an image on the medium kept in
// memory while it is applied: the apply's workers read blobs in file
// order, a few chunks apart, and the tables at the end once.
const chunkCache = 32 << 20

// readBlock is the read size of an image that is not read through a
// ChunkReader: a download under way, or one on the medium without chunk
// hashes (or a benchmark's unverified run).
const readBlock = 4 << 20

// inBlocks reads the size bytes of src in readBlock reads with one ahead,
// keeping up to chunkCache bytes of them in memory.
func inBlocks(src io.ReaderAt, size int64) *blockcache.Reader {
	return blockcache.New(size, blockcache.Options{BlockSize: readBlock, CacheBytes: chunkCache,
		Load: blockcache.ReaderAt(src, size, readBlock)})
}

// onMedium reports whether p is a file on the boot medium.
func (r *runner) onMedium(p string) bool {
	rel, err := filepath.Rel(r.env.MediumDir, p)
	return r.env.MediumDir != "" && err == nil && filepath.IsLocal(rel)
}

func (r *runner) setup(s *sequence.Setup) error {
	if r.env.SetupBinary == "" {
		return errors.New("this PE has no minint-setup program to hand over to")
	}
	dir := filepath.Join(r.st.Target, strings.TrimPrefix(answer.Dir, "/"))
	bin, err := os.ReadFile(r.env.SetupBinary)
	if err != nil {
		return err
	}
	if err := durable.WriteFile(filepath.Join(r.st.Target, answer.Binary), bin, 0o755); err != nil {
		return err
	}
	init := "/sbin/init"
	if _, err := os.Lstat(filepath.Join(r.st.Target, init)); err != nil {
		if _, err := os.Stat(filepath.Join(r.st.Target, "lib/systemd/systemd")); err == nil {
			init = "/lib/systemd/systemd"
		}
	}
	cfg := &answer.Config{Answer: s.Answer, Init: init, BootEntries: r.st.BootEntries, Created: time.Now().UTC()}
	if s.RestoreState != nil {
		if cfg.Answer.RestoreState, err = r.stateTrust(s.RestoreState); err != nil {
			return err
		}
	}
	if err := answer.WriteConfig(filepath.Join(r.st.Target, answer.ConfigFile), cfg); err != nil {
		return err
	}
	r.st.Setup = true
	r.rep.Printf("  %s and %s written; the first boot runs setup before %s", answer.ConfigFile, answer.Binary, init)
	return durable.SyncDir(dir)
}

func (r *runner) bootfiles(s *sequence.BootFiles) error {
	root, ok := rootPart(r.st.Parts)
	if !ok {
		return errors.New("no root partition")
	}
	cmdline := strings.TrimSpace(s.Cmdline)
	if r.st.Setup {
		cmdline = strings.TrimSpace(cmdline + " " + answer.InitArg)
	}
	req := BootRequest{Root: r.st.Target, Disk: *r.st.Disk, Parts: r.st.Parts, RootPart: root,
		Firmware: r.env.Inventory.Firmware, SecureBoot: r.env.Inventory.SecureBoot, Loader: s.Loader, Cmdline: cmdline}
	entries, err := r.env.Backend.BootFiles(r.ctx, req)
	if err != nil {
		return err
	}
	r.st.BootEntries = entries
	if r.st.Setup {
		// minint-setup must know which files carry init= to remove it.
		p := filepath.Join(r.st.Target, answer.ConfigFile)
		cfg, err := answer.ReadConfig(p)
		if err != nil {
			return err
		}
		cfg.BootEntries = entries
		if err := answer.WriteConfig(p, cfg); err != nil {
			return err
		}
	}
	unixSync()
	if r.st.Staged {
		return r.unpin()
	}
	return nil
}

func (r *runner) run(s *sequence.Command) error {
	argv := s.Argv()
	// The engine cancels r.ctx at the step's timeout (timed).
	cmd := exec.CommandContext(r.ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "MININT_TARGET="+r.st.Target, "MININT_STAGING="+r.staging)
	if r.st.Disk != nil {
		cmd.Env = append(cmd.Env, "MININT_DISK="+r.st.Disk.Path)
	}
	for k, v := range s.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// A timeout kills the command's whole process group (a shell's
	// children too), and output still held by a straggler is given up
	// after WaitDelay: a timed-out step ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if s.InTarget {
		if r.st.Target == "" {
			return errors.New("in-target: the target is not mounted")
		}
		cmd.SysProcAttr.Chroot = r.st.Target
		cmd.Dir = "/"
	}
	out := &lineWriter{f: func(l string) { r.rep.Printf("  | %s", l) }}
	cmd.Stdout, cmd.Stderr = out, out
	// A command must not outlive the engine (a crashed or killed peinit).
	err := child.Run(cmd)
	out.flush()
	if err != nil {
		return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return nil
}

// lineWriter hands complete lines of a command's output to f.
type lineWriter struct {
	f   func(string)
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.f(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.f(string(w.buf))
		w.buf = nil
	}
}

// saveLog keeps the whole log of a failed run next to the journal (or in
// LogDir before there is a staging folder) and uploads it.
func (r *runner) saveLog() {
	if r.env.DryRun {
		return
	}
	dir := r.staging
	if dir == "" {
		dir = r.env.LogDir
		if dir == "" {
			dir = os.TempDir()
		}
	}
	name := filepath.Join(dir, "failure-"+time.Now().UTC().Format("20060102T150405Z")+".log")
	if err := durable.WriteFile(name, r.log.Bytes(), 0o644); err != nil {
		r.rep.Printf("cannot save the log: %v", err)
	} else {
		r.rep.Printf("full log saved to %s", name)
		r.rep.Emit(progress.Event{Kind: "log", State: "saved", Msg: name})
	}
	if r.poster != nil {
		if err := r.poster.UploadLog(r.ctx, r.log.Bytes()); err != nil {
			r.rep.Printf("cannot upload the log: %v", err)
		}
	}
}
