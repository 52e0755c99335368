package pe

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/answer"
	"github.com/minint/minint/diskops"
	"github.com/minint/minint/manifest"
	"github.com/minint/minint/pe/capture"
	"github.com/minint/minint/sequence"
)

// imageBackend is the real SystemBackend on a disk image file: selection
// returns the file (Discover only lists block devices) and boot files are
// a marker (the loaders are tested in package bootloader and the e2e guests).
type imageBackend struct {
	*SystemBackend
	img string
}

func (b *imageBackend) SelectDisk(ctx context.Context, rule diskops.Rule) (TargetDisk, error) {
	fi, err := os.Stat(b.img)
	if err != nil {
		return TargetDisk{}, err
	}
	b.SystemBackend.disk = b.img
	return TargetDisk{Path: b.img, Size: fi.Size(), Desc: "image " + b.img}, nil
}

func (b *imageBackend) BootFiles(ctx context.Context, req BootRequest) ([]answer.BootEntry, error) {
	p := filepath.Join(req.Root, "boot/extlinux.conf")
	os.MkdirAll(filepath.Dir(p), 0o755)
	return []answer.BootEntry{{Path: "/boot/extlinux.conf"}}, os.WriteFile(p, []byte("APPEND root=UUID="+req.RootPart.FSUUID+" "+req.Cmdline+"\n"), 0o644)
}

func (b *imageBackend) Power(ctx context.Context, kind string) error { return nil }

func treeDigest(t *testing.T, root string, skip string) string {
	t.Helper()
	var out strings.Builder
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == skip || strings.HasPrefix(rel, skip+"/") || rel == "lost+found" || rel == "boot" || strings.HasPrefix(rel, "boot/") {
			if d.IsDir() && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		fi, _ := os.Lstat(p)
		fmt.Fprintf(&out, "%s %v", rel, fi.Mode())
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			fmt.Fprintf(&out, " %x", sha256.Sum256(b))
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			out.WriteString(" -> " + l)
		}
		out.WriteString("\n")
		return nil
	})
	return out.String()
}

// TestSystemBackendImage runs a whole sequence with the real diskops and
// wim code on a disk image: GPT, ext4 + FAT, a loop mount, a WIM made by
// wimlib-imagex fetched over HTTP and verified, applied, then a crash
// during apply and a resumed run reaching the same tree.
func TestSystemBackendImage(t *testing.T) {
	if os.Getenv("MININT_E2E") != "1" {
		t.Skip("MININT_E2E=1 runs loop-device tests")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices and mounts")
	}
	if _, err := exec.LookPath("wimlib-imagex"); err != nil {
		t.Skip("needs wimlib-imagex to make the test WIM")
	}
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	for p, c := range map[string]string{"etc/hostname": "x\n", "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "sbin/init": "#!/bin/sh\n", "usr/share/doc/a.txt": strings.Repeat("minint ", 5000),
		"etc/os-release": "NAME=Test\nPRETTY_NAME=\"Test OS 1\"\n"} {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(src, p), []byte(c), 0o644)
	}
	os.Symlink("../sbin/init", filepath.Join(src, "etc/init-link"))
	pkgDir := filepath.Join(tmp, "pkg")
	os.MkdirAll(pkgDir, 0o755)
	if out, err := exec.Command("wimlib-imagex", "capture", src, filepath.Join(pkgDir, "os.wim"), "os", "--unix-data", "--norpfix").CombinedOutput(); err != nil {
		t.Fatalf("wimlib-imagex: %v\n%s", err, out)
	}
	m, mb, err := manifest.Build(pkgDir, []string{"os.wim"}, manifest.BuildOptions{Image: &manifest.Image{File: "os.wim", Index: 1}})
	if err != nil {
		t.Fatal(err)
	}
	priv := mustPriv(t)
	os.WriteFile(filepath.Join(pkgDir, "manifest.json"), mb, 0o644)
	os.WriteFile(filepath.Join(pkgDir, "manifest.json.sig"), signPkg(t, m, mb, priv), 0o644)
	srv := httptest.NewServer(http.FileServer(http.Dir(pkgDir)))
	defer srv.Close()

	img := filepath.Join(tmp, "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, 300<<20)
	target := filepath.Join(tmp, "target")
	seq, err := sequence.Parse("img.yaml", []byte(fmt.Sprintf(`version: 1
steps:
  - type: select-disk
    disk: {first-largest: true}
  - type: partition
    table: gpt
    partitions:
      - {name: esp, size: 64M, type: esp, fs: vfat, label: ESP}
      - {name: swap, size: 16M, type: swap, fs: swap}
      - {name: root, size: rest, type: linux, fs: ext4, label: root}
  - type: format
  - type: mount
    target: %s
  - type: fetch
    manifest: %s/manifest.json
  - type: apply-image
  - type: bootfiles
`, target, srv.URL)))
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Backend: &imageBackend{&SystemBackend{}, img}, PublicKey: priv.Public().(ed25519.PublicKey), Inventory: Inventory{Firmware: "uefi"}}
	var log bytes.Buffer
	env.Console = &log
	crashed := false
	env.hook = func(step, point string) error {
		if step == "apply-image" && point == "after" && !crashed {
			crashed = true
			panic(crash{step, point})
		}
		return nil
	}
	func() {
		defer func() { recover() }()
		Run(context.Background(), seq, env)
	}()
	if !crashed {
		t.Fatalf("did not get to apply:\n%s", log.String())
	}
	// Next boot: same disk, the journal on it says where to go on.
	log.Reset()
	if err := Run(context.Background(), seq, env); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "resuming from the journal") || !strings.Contains(log.String(), "partitioning skipped") || !strings.Contains(log.String(), ": fetch run again") {
		t.Errorf("did not resume:\n%s", log.String())
	}
	// Mount the result and compare with the source tree.
	b := &imageBackend{&SystemBackend{}, img}
	td, _ := b.SelectDisk(context.Background(), diskops.Rule{})
	parts, ok := b.Existing(context.Background(), td, &seq.Steps[1].(*sequence.Partition).Layout)
	if !ok {
		t.Fatal("layout not found on the image")
	}
	root, _ := rootPart(parts)
	un, err := b.Mount(context.Background(), root, filepath.Join(tmp, "check"))
	if err != nil {
		t.Fatal(err)
	}
	want := treeDigest(t, src, "minint")
	if got := treeDigest(t, filepath.Join(tmp, "check"), "minint"); got != want {
		t.Errorf("applied tree differs:\n%s\nwant\n%s", got, want)
	}
	if _, err := os.Stat(filepath.Join(tmp, "check/minint/os.wim")); err != nil {
		t.Errorf("staged image missing: %v", err)
	}

	// The deployed system's first boot restored a user state and removed
	// /minint. A PE that comes back then finds the system and refuses to
	// partition its disk.
	if err := os.RemoveAll(filepath.Join(tmp, "check/minint")); err != nil {
		t.Fatal(err)
	}
	if err := un(); err != nil {
		t.Fatal(err)
	}
	// Look mounts it read-only: writing there fails.
	var name string
	err = b.Look(context.Background(), td, root, func(dir string) error {
		if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err == nil {
			t.Error("Look mounted the file system writable")
		}
		sys, err := capture.Inspect(dir)
		if err == nil {
			name = sys.PrettyName
		}
		return err
	})
	if err != nil || name != "Test OS 1" {
		t.Errorf("Look: %q, %v; want the image's os-release", name, err)
	}
	log.Reset()
	if err := Run(context.Background(), seq, env); !errors.Is(err, ErrDeployed) || !strings.Contains(err.Error(), "(Test OS 1)") {
		t.Fatalf("a PE booted on the deployed system: %v\n%s", err, log.String())
	}
	un, err = b.Mount(context.Background(), root, filepath.Join(tmp, "check"))
	if err != nil {
		t.Fatal(err)
	}
	if got := treeDigest(t, filepath.Join(tmp, "check"), "minint"); got != want {
		t.Errorf("the refused run changed the system:\n%s\nwant\n%s", got, want)
	}
	if err := un(); err != nil {
		t.Fatal(err)
	}

	// The system hibernates: its memory image replaces the swap
	// signature. Existing reports it, and the PE refuses before it mounts
	// anything.
	layout := &seq.Steps[1].(*sequence.Partition).Layout
	swap := parts[1]
	if p, _ := b.Existing(context.Background(), td, layout); len(p) != 3 || p[1].Name != "swap" || p[1].Hibernated {
		t.Fatalf("before hibernation: %+v", p)
	}
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt([]byte("S1SUSPEND\x00"), swap.Start+4096-10)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := b.Existing(context.Background(), td, layout); len(p) != 3 || !p[1].Hibernated {
		t.Fatalf("Existing on the hibernated disk: %+v, want the swap partition Hibernated", p)
	}
	sum := fileSum(t, img)
	log.Reset()
	if err := Run(context.Background(), seq, env); !errors.Is(err, ErrHibernated) || !strings.Contains(err.Error(), "partition 2 holds the memory image") {
		t.Fatalf("a PE booted on the hibernated system: %v\n%s", err, log.String())
	}
	if fileSum(t, img) != sum {
		t.Error("the PE changed the hibernated system's disk")
	}
}
