package initramfs

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/kmod"
)

func TestKernelVersionHeader(t *testing.T) {
	img := make([]byte, 0x1000)
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x20e:], 0x800-0x200)
	copy(img[0x800:], "6.9.1-test (builder@host) #1 SMP\x00garbage")
	v, err := kernelVersion(img)
	if err != nil || v != "6.9.1-test" {
		t.Errorf("kernelVersion = %q, %v", v, err)
	}
	if _, err := kernelVersion(make([]byte, 0x1000)); err == nil {
		t.Error("no error for an image without a setup header")
	}
	// Without a header the file name still tells.
	v, err = kernelVersionOf("/x/vmlinuz-5.10.0-1-amd64", []byte("not a kernel"))
	if err != nil || v != "5.10.0-1-amd64" {
		t.Errorf("kernelVersionOf(file name) = %q, %v", v, err)
	}
	if _, err := kernelVersionOf("/x/bzImage", []byte("not a kernel")); !errors.Is(err, ErrNoKernel) {
		t.Errorf("kernelVersionOf(no header, no version in name) = %v, want ErrNoKernel", err)
	}
}

func TestHostKernelVersion(t *testing.T) {
	ks, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(ks) == 0 {
		t.Skip("no /boot/vmlinuz-* on this host")
	}
	for _, k := range ks {
		img, err := os.ReadFile(k)
		if err != nil {
			t.Fatal(err)
		}
		v, err := kernelVersion(img)
		if err != nil {
			t.Errorf("%s: %v", k, err)
			continue
		}
		if want := strings.TrimPrefix(filepath.Base(k), "vmlinuz-"); v != want {
			t.Errorf("%s: header says %q, file name %q", k, v, want)
		}
	}
}

func TestFindKernel(t *testing.T) {
	dir := t.TempDir()
	boot := filepath.Join(dir, "boot")
	os.Mkdir(boot, 0o755)
	_, err := findKernel(dir, "")
	if !errors.Is(err, ErrNoKernel) || !strings.Contains(err.Error(), "linux-image-amd64") {
		t.Errorf("empty /boot: %v, want ErrNoKernel telling which package to install", err)
	}
	for _, v := range []string{"6.1.0-9-amd64", "6.1.0-56-amd64", "5.10.0-1-amd64"} {
		os.WriteFile(filepath.Join(boot, "vmlinuz-"+v), nil, 0o644)
	}
	k, err := findKernel(dir, "")
	if err != nil || filepath.Base(k) != "vmlinuz-6.1.0-56-amd64" {
		t.Errorf("newest = %q, %v", k, err)
	}
	_, err = findKernel(dir, filepath.Join(dir, "vmlinuz-nope"))
	if !errors.Is(err, ErrNoKernel) || !strings.Contains(err.Error(), "vmlinuz-nope") {
		t.Errorf("missing --kernel: %v", err)
	}
}

// hostKernel returns the newest host kernel, or skips.
func hostKernel(t *testing.T) string {
	k, err := findKernel("/", "")
	if err != nil {
		t.Skipf("needs a distribution kernel: %v", err)
	}
	return k
}

// checkNothingWritten fails if dir holds anything.
func checkNothingWritten(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("output directory not empty after a failed build: %v", names)
	}
}

func TestBuildBadInput(t *testing.T) {
	k := hostKernel(t)
	cache := t.TempDir()
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, nil, 0o644)
	for _, c := range []struct {
		name    string
		cfg     Config
		out     string // "" = fresh temp dir
		is      error
		mention []string
	}{
		{"missing kernel", Config{Kernel: "/nonexistent/vmlinuz"}, "", ErrNoKernel, []string{"/nonexistent/vmlinuz", "--kernel"}},
		{"unknown module", Config{Kernel: k, Modules: []string{"ext4", "no_such_module_xyz"}}, "", kmod.ErrUnknownModule, []string{"no_such_module_xyz"}},
		{"missing modules dir", Config{Kernel: k, ModulesDir: "/nonexistent/modules"}, "", ErrNoModules, []string{"/nonexistent/modules", "apt-get install linux-image-"}},
		{"unwritable output", Config{Kernel: k}, filepath.Join(file, "out"), ErrOutput, []string{"a-file"}},
		{"bad compression", Config{Kernel: k, Compression: "lz4"}, "", nil, []string{"lz4", "gzip"}},
		{"bad extra file", Config{Kernel: k, Files: []File{{Src: "/nonexistent/seq.yaml", Dest: "etc/seq.yaml"}}}, "", nil, []string{"/nonexistent/seq.yaml"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := c.out
			if out == "" {
				out = t.TempDir()
			}
			c.cfg.CacheDir = cache
			pe, err := Build(context.Background(), c.cfg, out)
			if err == nil {
				t.Fatalf("built %+v", pe)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("err = %v, want %v", err, c.is)
			}
			for _, s := range c.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if c.out == "" {
				checkNothingWritten(t, out)
			}
		})
	}
}

func TestBuildNoGo(t *testing.T) {
	k := hostKernel(t)
	t.Setenv("PATH", t.TempDir())
	out := t.TempDir()
	_, err := Build(context.Background(), Config{Kernel: k, CacheDir: t.TempDir()}, out)
	if !errors.Is(err, ErrNoGo) || !strings.Contains(err.Error(), "go.dev") {
		t.Errorf("err = %v, want ErrNoGo saying where to get Go", err)
	}
	checkNothingWritten(t, out)
}

func TestFindSource(t *testing.T) {
	d, err := findSource("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d, "cmd", "peinit")); err != nil {
		t.Errorf("findSource = %s without cmd/peinit", d)
	}
	if _, err := findSource(t.TempDir()); !errors.Is(err, ErrNoSource) {
		t.Errorf("findSource(elsewhere) = %v, want ErrNoSource", err)
	}
}

func TestGoInputsKey(t *testing.T) {
	src, err := findSource("")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pkgs := commandPackages(nil)
	k1, err := goInputsKey(ctx, src, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := goInputsKey(ctx, src, pkgs)
	if k1 != k2 {
		t.Errorf("key not stable: %s, %s", k1, k2)
	}
	k3, err := goInputsKey(ctx, src, commandPackages([]string{"github.com/u-root/u-root/cmds/core/tar"}))
	if err != nil {
		t.Fatal(err)
	}
	if k3 == k1 {
		t.Error("an extra command does not change the key")
	}
}
