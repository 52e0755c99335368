package initramfs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/minint/minint/internal/child"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/minint/minint/internal/durable"
	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"
)

// The PE is linux/amd64 without cgo whatever the host says.
var goEnv = []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}

func checkGo() (string, error) {
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("%w: the PE's programs are compiled at build time and %q is not in PATH: install Go ≥ 1.26 (https://go.dev/dl/) and put its bin directory in PATH", ErrNoGo, "go")
	}
	return p, nil
}

// buildTimeSource is the directory of this package's source when the binary
// was built without -trimpath: running an installed minint then still finds
// the tree it came from.
func buildTimeSource() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return ""
	}
	return filepath.Dir(filepath.Dir(file))
}

// goInputsKey hashes everything the Go part of the initramfs is built from:
// the Go version, the package list, and for every package they import the
// source files (packages of minint's own module, which change) or the
// module version (dependencies, whose contents go.sum pins).
func goInputsKey(ctx context.Context, src string, pkgs []string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "minint-go v1\nenv %s\nbuilder busybox init=peinit shell=gosh\n", strings.Join(goEnv, " "))
	ver, err := goCmd(ctx, src, "env", "GOVERSION", "GOFLAGS")
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "go %s\n", ver)
	// Dependencies are keyed below by module version, which go.sum pins;
	// hashing all of go.sum would rebuild whenever anyone adds an unrelated
	// dependency. Replace directives change code without changing versions.
	gomod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoSource, err)
	}
	inReplace := false
	for _, l := range strings.Split(string(gomod), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "replace ("):
			inReplace = true
		case inReplace && l == ")":
			inReplace = false
		case inReplace || strings.HasPrefix(l, "replace "):
			fmt.Fprintf(h, "go.mod %s\n", l)
		}
	}
	for _, p := range pkgs {
		fmt.Fprintf(h, "cmd %s\n", p)
	}
	const format = `{{.ImportPath}}|{{.Dir}}|{{if .Module}}{{.Module.Path}}@{{.Module.Version}}{{if .Module.Main}}|main{{end}}{{end}}|{{join .GoFiles " "}} {{join .SFiles " "}} {{join .EmbedFiles " "}}`
	out, err := goCmd(ctx, src, append([]string{"list", "-deps", "-f", format}, pkgs...)...)
	if err != nil {
		return "", err
	}
	s := bufio.NewScanner(strings.NewReader(out))
	for s.Scan() {
		f := strings.SplitN(s.Text(), "|", 5)
		if len(f) < 4 {
			continue
		}
		if len(f) == 5 && f[3] == "main" {
			fmt.Fprintf(h, "pkg %s\n", f[0])
			for _, name := range strings.Fields(f[4]) {
				b, err := os.ReadFile(filepath.Join(f[1], name))
				if err != nil {
					return "", fmt.Errorf("hashing Go sources: %w", err)
				}
				fmt.Fprintf(h, " %s %x\n", name, sha256.Sum256(b))
			}
			continue
		}
		fmt.Fprintf(h, "pkg %s %s\n", f[0], f[2])
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

func goCmd(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), goEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := child.Output(cmd)
	if err != nil {
		return "", fmt.Errorf("go %s (in %s): %v: %s", strings.Join(args[:1], " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// buildGo compiles pkgs into one busybox-style binary with u-root's
// builder and writes the uncompressed cpio to out (via a temporary file).
func buildGo(ctx context.Context, src, cache string, pkgs []string, out string) error {
	tmp, err := os.MkdirTemp(cache, "build-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// The builder writes a Go source tree; outside the repository, or
	// `go vet ./...` and `go mod tidy` run meanwhile would take it for part
	// of the minint module.
	work, err := os.MkdirTemp("", "minint-initramfs-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var logBuf bytes.Buffer
	l := llog.New(slog.LevelInfo, llog.WritePrintf(&logBuf))
	env := golang.Default(golang.DisableCGO(), golang.WithGOOS("linux"), golang.WithGOARCH("amd64"), golang.WithWorkingDir(src))
	part := filepath.Join(tmp, "go.cpio")
	opts, err := uimage.OptionsFor(
		uimage.WithReplaceEnv(env),
		uimage.WithBaseArchive(uimage.DefaultRamfs()),
		uimage.WithBusyboxCommands(pkgs...),
		uimage.WithInit("peinit"),
		uimage.WithShell("gosh"),
		uimage.WithTempDir(work),
		uimage.WithSkipLDD(),
		uimage.WithCPIOOutput(part),
	)
	if err != nil {
		return fmt.Errorf("u-root builder options: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- uimage.CreateInitramfs(l, *opts) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("building the PE's Go programs with u-root: %w\n%s", err, lastLines(logBuf.String(), 30))
	}
	return durable.Rename(part, out)
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
