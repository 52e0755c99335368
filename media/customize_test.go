package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/pe"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/authenticode"
	"github.com/minint/minint/initramfs"
	"github.com/minint/minint/manifest"
	"github.com/minint/minint/sign"
	"github.com/u-root/mkuimage/cpio"
)

// keyPair writes a package signing key pair and returns the files.
func keyPair(t *testing.T, dir, name string) (pubFile, keyFile string) {
	t.Helper()
	pub, priv, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pubFile, keyFile = filepath.Join(dir, name+".pub"), filepath.Join(dir, name+".key")
	os.WriteFile(pubFile, pub, 0o644)
	os.WriteFile(keyFile, priv, 0o600)
	return pubFile, keyFile
}

// peInitrd writes an initramfs (zstd? no: a plain newc archive, which the
// kernel and initramfs.ReadArchive read alike) with the files a built PE
// has that customizing looks at: its build info and package key.
func peInitrd(t *testing.T, dir, pubFile string) string {
	t.Helper()
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	recs := []cpio.Record{cpio.Directory("etc", 0o755), cpio.Directory("etc/minint", 0o755),
		cpio.StaticFile("etc/minint/pe.json", `{"id": "pe-test", "kernel_version": "6.1.0-test"}`, 0o644),
		cpio.StaticFile("init", strings.Repeat("peinit", 50000), 0o755)}
	if pubFile != "" {
		b, _ := os.ReadFile(pubFile)
		recs = append(recs, cpio.StaticFile("etc/minint/package.pub", string(b), 0o644))
	}
	for _, r := range recs {
		if err := w.WriteRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	cpio.WriteTrailer(w)
	p := filepath.Join(dir, "initrd")
	os.WriteFile(p, buf.Bytes(), 0o644)
	return p
}

// testPackage writes a package with one image file, signed with keyFile.
func testPackage(t *testing.T, dir, keyFile string, size int) string {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	img := make([]byte, size)
	rand.Read(img)
	os.WriteFile(filepath.Join(dir, "os.wim"), img, 0o644)
	m, data, err := manifest.Build(dir, []string{"os.wim"}, manifest.BuildOptions{Name: "test-os",
		Image: &manifest.Image{File: "os.wim", Index: 1}, Created: time.Unix(1700000000, 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := os.ReadFile(keyFile)
	priv, err := sign.ParsePrivateKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, manifest.FileName), data, 0o644)
	sig, err := sign.Sign(data, priv, m.SignContext())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, manifest.SignatureName), sig, 0o644)
	return dir
}

const testSequence = `version: 1
name: customized
steps:
  - type: select-disk
    disk: {transport: virtio}
  - type: partition
    table: gpt
    partitions:
      - {name: root, size: rest, type: linux, fs: ext4}
  - type: format
  - type: mount
  - type: fetch
    manifest: medium:/minint/image/manifest.json
  - type: apply-image
`

// builtISO is a released ISO: a PE trusting pubFile, no sequence, no package.
func builtISO(t *testing.T, dir, pubFile string, o func(*Options)) string {
	t.Helper()
	in := testInputs(t)
	opts := Options{Kernel: in.kernel, Initramfs: peInitrd(t, dir, pubFile), Label: "RELEASED", Cmdline: "minint.events=serial",
		Info: map[string]any{"pe_id": "pe-test"}, Epoch: time.Unix(1700000000, 0)}
	if o != nil {
		o(&opts)
	}
	out := filepath.Join(dir, "released.iso")
	if _, err := BuildISO(context.Background(), opts, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCustomizeISO(t *testing.T) {
	needHost(t)
	dir := t.TempDir()
	pub, key := keyPair(t, dir, "org")
	newPub, newKey := keyPair(t, dir, "new")
	released := builtISO(t, dir, pub, nil)
	before, err := ReadMedium(released)
	if err != nil {
		t.Fatal(err)
	}
	if before.Sequence != nil || len(before.Packages) != 0 || before.Key == "" || before.PE["id"] != "pe-test" {
		t.Fatalf("released medium: %+v", before)
	}

	seq := filepath.Join(dir, "seq.yaml")
	os.WriteFile(seq, []byte(testSequence), 0o644)
	pkg := testPackage(t, filepath.Join(dir, "pkg"), newKey, 3<<20+5)
	note := filepath.Join(dir, "note.txt")
	os.WriteFile(note, []byte("hello\n"), 0o644)
	out := filepath.Join(dir, "custom.iso")
	start := time.Now()
	res, err := CustomizeISO(context.Background(), released, out, Customization{
		Sequence: seq, Key: newPub, Packages: []Package{{Dir: pkg}},
		Files:   []File{{Src: note, Dest: "notes/note.txt"}},
		Cmdline: "ip=192.0.2.10::192.0.2.1:24::eth0:none nameserver=192.0.2.53", Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("customized in %s", time.Since(start).Round(time.Millisecond))

	after, err := ReadMedium(out)
	if err != nil {
		t.Fatal(err)
	}
	pubB, _ := os.ReadFile(newPub)
	newID, _ := sign.ParsePublicKey(pubB)
	if after.Key != sign.KeyID(newID) {
		t.Errorf("package key %s, want the new one %s", after.Key, sign.KeyID(newID))
	}
	if after.MediaID == before.MediaID || after.MediaID != res.MediaID || after.CustomizedFrom != before.MediaID {
		t.Errorf("media id %s (from %s), before %s, result %s", after.MediaID, after.CustomizedFrom, before.MediaID, res.MediaID)
	}
	if after.Sequence == nil || after.Sequence.Name != "customized" || after.Sequence.Steps != 6 || after.Sequence.Error != "" {
		t.Errorf("sequence %+v", after.Sequence)
	}
	if len(after.Packages) != 1 || !after.Packages[0].Signed || after.Packages[0].Dir != "/minint/image" || after.Packages[0].Image != "os.wim" {
		t.Errorf("packages %+v", after.Packages)
	}
	for _, want := range []string{"minint.media=" + after.MediaID, "nameserver=192.0.2.53 console=ttyS0,115200", "minint.events=serial"} {
		if !strings.Contains(after.Cmdline, want) {
			t.Errorf("cmdline %q lacks %q", after.Cmdline, want)
		}
	}
	if after.PE["kernel_version"] != "6.1.0-test" || after.Label != "RELEASED" {
		t.Errorf("PE %v, label %q", after.PE, after.Label)
	}
	files := map[string]int64{}
	for _, f := range after.Files {
		files[f.Path] = f.Size
	}
	if files["/minint/image/os.wim"] != 3<<20+5 || files["/minint/notes/note.txt"] != 6 || files["/minint/sequence.yaml"] == 0 {
		t.Errorf("files %v", files)
	}

	// The boot menus carry the new command line, the ESP (the signed
	// chain) is the released one bit for bit, the hybrid layout is whole.
	read := func(iso, p string) []byte {
		t.Helper()
		dst := filepath.Join(t.TempDir(), "x")
		if msg, err := exec.Command("xorriso", "-osirrox", "on", "-indev", iso, "-extract", p, dst).CombinedOutput(); err != nil {
			t.Fatalf("xorriso -extract %s from %s: %v\n%s", p, iso, err, msg)
		}
		b, err := os.ReadFile(dst)
		if err != nil || len(b) == 0 {
			t.Fatalf("%s from %s: %v (%d bytes)", p, iso, err, len(b))
		}
		return b
	}
	for _, p := range []string{"/" + IsolinuxCfgPath, "/" + GrubConfigPath} {
		if c := read(out, p); !bytes.Contains(c, []byte("minint.media="+after.MediaID)) || !bytes.Contains(c, []byte("ip=192.0.2.10::192.0.2.1:24::eth0:none")) {
			t.Errorf("%s:\n%s", p, c)
		}
	}
	if !bytes.Equal(read(out, "/"+ESPImagePath), read(released, "/"+ESPImagePath)) {
		t.Error("the EFI system partition changed")
	}
	if !bytes.Equal(read(out, "/"+KernelPath), read(released, "/"+KernelPath)) {
		t.Error("the kernel changed")
	}
	initrd := filepath.Join(dir, "initrd.out")
	os.WriteFile(initrd, read(out, "/"+InitrdPath), 0o644)
	ents, err := initramfs.ReadArchive(initrd)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name == "init" && len(e.Data) != 6*50000 {
			t.Error("the PE's init changed")
		}
	}
	report, err := exec.Command("xorriso", "-indev", out, "-report_el_torito", "plain", "-report_system_area", "plain").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, report)
	}
	for _, want := range []string{"El Torito boot img :   1  BIOS", "El Torito boot img :   2  UEFI", "GPT partname local :   1  EFI system partition", "MBR partition      :   2   0x00  0xef"} {
		if !strings.Contains(strings.Join(strings.Fields(string(report)), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("xorriso report lacks %q:\n%s", want, report)
		}
	}

	// Determinism: the same customization gives the same bytes.
	out2 := filepath.Join(dir, "custom2.iso")
	if _, err := CustomizeISO(context.Background(), released, out2, Customization{
		Sequence: seq, Key: newPub, Packages: []Package{{Dir: pkg}}, Files: []File{{Src: note, Dest: "notes/note.txt"}},
		Cmdline: "ip=192.0.2.10::192.0.2.1:24::eth0:none nameserver=192.0.2.53"}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(out2)
	if !bytes.Equal(a, b) {
		t.Error("two equal customizations gave different images")
	}

	// In place, and again: a customized ISO is a released ISO too.
	if _, err := CustomizeISO(context.Background(), out2, out2, Customization{Files: []File{{Src: note, Dest: "second.txt"}}}); err != nil {
		t.Fatal(err)
	}
	again, err := ReadMedium(out2)
	if err != nil {
		t.Fatal(err)
	}
	if again.Sequence == nil || again.Key != after.Key || !strings.Contains(again.Cmdline, "nameserver=192.0.2.53 console") || strings.Count(again.Cmdline, "nameserver=") != 1 {
		t.Errorf("second customization: %+v", again)
	}
	_ = key
}

func TestCustomizeBadInput(t *testing.T) {
	needHost(t)
	dir := t.TempDir()
	pub, key := keyPair(t, dir, "org")
	_, otherKey := keyPair(t, dir, "other")
	released := builtISO(t, dir, pub, nil)
	good := testPackage(t, filepath.Join(dir, "good"), key, 1000)
	foreign := testPackage(t, filepath.Join(dir, "foreign"), otherKey, 1000)
	tampered := testPackage(t, filepath.Join(dir, "tampered"), key, 1000)
	os.WriteFile(filepath.Join(tampered, "os.wim"), make([]byte, 1000), 0o644)
	badSeq := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badSeq, []byte("version: 1\nsteps:\n  - type: partition\n    table: zfs\n"), 0o644)
	notISO := filepath.Join(dir, "not.iso")
	os.WriteFile(notISO, make([]byte, 1<<20), 0o644)
	os.MkdirAll(filepath.Join(dir, "nokey"), 0o755)
	noKey := builtISO(t, filepath.Join(dir, "nokey"), "", nil)
	note := filepath.Join(dir, "note")
	os.WriteFile(note, []byte("x"), 0o644)

	for _, c := range []struct {
		name string
		in   string
		c    Customization
		want string
		is   error
	}{
		{"invalid sequence", released, Customization{Sequence: badSeq}, "bad.yaml:3:9", ErrInput},
		{"foreign package", released, Customization{Packages: []Package{{Dir: foreign}}}, "signature", ErrInput},
		{"tampered package", released, Customization{Packages: []Package{{Dir: tampered}}}, "checksum", ErrInput},
		{"no package there", released, Customization{Packages: []Package{{Dir: dir}}}, "manifest.json", ErrInput},
		{"PE without key", noKey, Customization{Packages: []Package{{Dir: good}}}, "no package key", ErrInput},
		{"bad network", released, Customization{Cmdline: "ip=192.0.2.300::192.0.2.1:24::eth0:none"}, "192.0.2.300", ErrInput},
		{"own media id", released, Customization{Cmdline: "minint.media=x"}, "minint.media", ErrInput},
		{"quote", released, Customization{Cmdline: `a="b c"`}, "double quote", ErrInput},
		{"escape", released, Customization{Files: []File{{Src: note, Dest: "../boot/vmlinuz"}}}, "below /minint", ErrInput},
		{"media.json", released, Customization{Files: []File{{Src: note, Dest: "media.json"}}}, "reserved", ErrInput},
		{"8.3 clash", released, Customization{Files: []File{{Src: note, Dest: "longname-a.txt"}, {Src: note, Dest: "longname-b.txt"}}}, "8.3", ErrInput},
		{"private key", released, Customization{Key: key}, ".pub", ErrInput},
		{"label", released, Customization{Label: "bad label"}, "label", ErrInput},
		{"not an ISO", notISO, Customization{}, "", ErrFormat},
		{"driver pack without modules", released, Customization{DriverPacks: []string{dir}}, "no kernel module index", ErrInput},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.iso")
			_, err := CustomizeISO(context.Background(), c.in, out, c.c)
			if err == nil || !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %v mentioning %q", err, c.is, c.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a failed customization left an image")
			}
			if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}

	// A UKI signed with the organization's key holds the command line and
	// the initramfs: changing them is refused, adding files is not.
	kf, cf, cert := testKey(t, "minint test")
	os.MkdirAll(filepath.Join(dir, "uki"), 0o755)
	uki := builtISO(t, filepath.Join(dir, "uki"), pub, func(o *Options) { o.SecureBootKey, o.SecureBootCert = kf, cf })
	for _, c := range []Customization{{Cmdline: "x=1"}, {Key: pub}} {
		if _, err := CustomizeISO(context.Background(), uki, filepath.Join(dir, "u.iso"), c); !errors.Is(err, ErrBoundary) || !strings.Contains(err.Error(), "--secure-boot-key") {
			t.Errorf("UKI %+v: %v", c, err)
		}
	}
	res, err := CustomizeISO(context.Background(), uki, filepath.Join(dir, "u.iso"), Customization{Files: []File{{Src: note, Dest: "n"}}})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := ReadMedium(res.Path); err != nil || m.MediaID == "" || !strings.Contains(m.Cmdline, "minint.media="+m.MediaID) {
		t.Errorf("UKI medium after adding a file: %+v %v (the id is in the signed command line and must stay)", m, err)
	}
	if _, err := CustomizeISO(context.Background(), released, filepath.Join(dir, "s.iso"), Customization{Cmdline: "x=1", SecureBootKey: kf, SecureBootCert: cf}); !errors.Is(err, ErrInput) {
		t.Errorf("a Secure Boot key for a shim medium: %v", err)
	}

	// With the key the UKI is built and signed again around the new
	// command line and initramfs.
	newPub, _ := keyPair(t, dir, "new")
	res, err = CustomizeISO(context.Background(), uki, filepath.Join(dir, "r.iso"), Customization{Cmdline: "x=1", Key: newPub,
		SecureBootKey: kf, SecureBootCert: cf})
	if err != nil {
		t.Fatal(err)
	}
	m, err := ReadMedium(res.Path)
	if err != nil || !strings.Contains(m.Cmdline, "minint.media="+m.MediaID+" ") || !strings.Contains(m.Cmdline, " x=1 ") {
		t.Fatalf("re-signed UKI medium: %+v %v", m, err)
	}
	espImg := filepath.Join(t.TempDir(), "esp")
	if msg, err := exec.Command("xorriso", "-osirrox", "on", "-indev", res.Path, "-extract", "/"+ESPImagePath, espImg).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, msg)
	}
	esp, _ := os.ReadFile(espImg)
	img := espFile(t, esp, "/EFI/BOOT/BOOTX64.EFI")
	if err := authenticode.Verify(img, cert); err != nil {
		t.Errorf("the re-signed UKI does not verify: %v", err)
	}
	f, err := pe.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	sec := f.Section(".cmdline")
	if sec == nil {
		t.Fatal("UKI without .cmdline")
	}
	if b, _ := sec.Data(); !bytes.HasPrefix(b, []byte(m.Cmdline)) {
		t.Errorf("UKI .cmdline %q, want %q", b, m.Cmdline)
	}
	if init := f.Section(".initrd"); init == nil || int64(init.Size) < sizeOf(peInitrd(t, t.TempDir(), pub)) {
		t.Error("UKI .initrd missing or not the customized one")
	}
}
