package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"debug/pe"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/minint/minint/authenticode"
	"github.com/minint/minint/authenticode/authenticodetest"
)

// needHost skips when the host packages the builder needs are missing
// (`make test` installs them first; the bad-input tests check the error).
func needHost(t *testing.T) {
	t.Helper()
	if _, err := DefaultHostPaths.check(need{iso: true, chain: ChainShim}); err != nil {
		t.Skipf("host packages missing (run scripts/setup-host.sh): %v", err)
	}
	if _, err := DefaultHostPaths.check(need{chain: ChainUKI}); err != nil {
		t.Skipf("host packages missing (run scripts/setup-host.sh): %v", err)
	}
}

type inputs struct {
	kernel, initrd, seq, big string
}

// testInputs writes random stand-ins for a kernel and an initramfs: the
// builder treats both as opaque bytes, and random content catches any
// mix-up of offsets.
func testInputs(t *testing.T) inputs {
	t.Helper()
	dir := t.TempDir()
	w := func(name string, n int) string {
		b := make([]byte, n)
		rand.Read(b)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	in := inputs{kernel: w("vmlinuz", 1<<20+123), initrd: w("initrd", 700_001), big: w("big.bin", 3<<20+7)}
	in.seq = filepath.Join(dir, "seq.yaml")
	os.WriteFile(in.seq, []byte("steps: []\n"), 0o644)
	return in
}

func testOptions(in inputs) Options {
	return Options{Kernel: in.kernel, Initramfs: in.initrd, Label: "MININT_TEST", Cmdline: "foo=bar",
		ExtraFiles: []File{{Src: in.seq, Dest: "sequence.yaml"}, {Src: in.big, Dest: "images/big.bin"}},
		Info:       map[string]any{"pe_id": "test"}, Epoch: time.Unix(1700000000, 0)}
}

func TestISOStructure(t *testing.T) {
	needHost(t)
	in := testInputs(t)
	out := filepath.Join(t.TempDir(), "m.iso")
	res, err := BuildISO(context.Background(), testOptions(in), out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(img)) != res.Size || len(img)%cylinder != 0 {
		t.Fatalf("image is %d bytes, result says %d; want a multiple of %d", len(img), res.Size, cylinder)
	}
	for _, want := range []string{"minint.media=" + res.MediaID, "minint.done=poweroff", "foo=bar"} {
		if !strings.Contains(res.Cmdline, want) {
			t.Errorf("cmdline %q lacks %q", res.Cmdline, want)
		}
	}
	if !strings.HasSuffix(res.Cmdline, "console=ttyS0,115200") {
		t.Errorf("cmdline %q: the serial console must come last", res.Cmdline)
	}

	// Files, read back with go-diskfs.
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fsys, err := iso9660.Read(file.New(f, true), int64(len(img)), 0, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimRight(fsys.Label(), " "); got != "MININT_TEST" {
		t.Errorf("volume label %q", got)
	}
	read := func(p string) []byte {
		t.Helper()
		fh, err := fsys.OpenFile(p, os.O_RDONLY)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		b, err := io.ReadAll(fh)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return b
	}
	same := func(isoPath, host string) {
		t.Helper()
		want, _ := os.ReadFile(host)
		if got := read(isoPath); !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes differ from %s (%d bytes)", isoPath, len(got), host, len(want))
		}
	}
	same("/boot/vmlinuz", in.kernel)
	same("/boot/initrd", in.initrd)
	same("/isolinux/ldlinux.c32", DefaultHostPaths.LdlinuxC32)
	same("/minint/sequence.yaml", in.seq)
	same("/minint/images/big.bin", in.big)
	cfg := string(read("/isolinux/isolinux.cfg"))
	if !strings.Contains(cfg, "APPEND "+res.Cmdline+"\n") || !strings.Contains(cfg, "KERNEL /boot/vmlinuz") || !strings.Contains(cfg, "INITRD /boot/initrd") {
		t.Errorf("isolinux.cfg:\n%s", cfg)
	}
	grub := string(read("/boot/grub/grub.cfg"))
	if !strings.Contains(grub, "\tlinux /boot/vmlinuz "+res.Cmdline+"\n") || !strings.Contains(grub, "\tinitrd /boot/initrd\n") {
		t.Errorf("grub.cfg:\n%s", grub)
	}
	// One kernel and one initramfs: the ISO holds them once, plus the ESP
	// (the loaders only), ISOLINUX and the extra files.
	var payload int64
	for _, f := range []string{in.kernel, in.initrd, in.seq, in.big} {
		payload += sizeOf(f)
	}
	if res.Size > payload+res.ESPSize+2<<20 {
		t.Errorf("ISO is %d bytes for %d bytes of payload and a %d-byte ESP: something is stored twice", res.Size, payload, res.ESPSize)
	}
	if res.Chain != ChainShim {
		t.Errorf("chain %q, want %q by default", res.Chain, ChainShim)
	}
	var info map[string]any
	if err := json.Unmarshal(read("/minint/media.json"), &info); err != nil {
		t.Fatal(err)
	}
	if info["id"] != res.MediaID || info["pe_id"] != "test" || info["cmdline"] != res.Cmdline {
		t.Errorf("media.json: %v", info)
	}

	// El Torito: BIOS entry on isolinux.bin with a boot info table, EFI
	// entry on the ESP image.
	boots, err := ReadBootCatalog(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(boots) != 2 || boots[0].Platform != PlatformBIOS || boots[1].Platform != PlatformEFI || !boots[0].Bootable || !boots[1].Bootable {
		t.Fatalf("boot catalog: %+v", boots)
	}
	isolinux, _ := os.ReadFile(DefaultHostPaths.IsolinuxBin)
	at := int64(boots[0].LBA) * 2048
	if !bytes.Equal(img[at+64:at+int64(len(isolinux))], isolinux[64:]) {
		t.Error("BIOS boot entry does not point at isolinux.bin")
	}
	if binary.LittleEndian.Uint32(img[at+8:]) != 16 || binary.LittleEndian.Uint32(img[at+12:]) != boots[0].LBA {
		t.Error("isolinux.bin has no boot info table")
	}
	esp := img[int64(boots[1].LBA)*2048 : int64(boots[1].LBA)*2048+res.ESPSize]
	checkShimESP(t, esp)

	// Hybrid MBR.
	hd, _ := os.ReadFile(DefaultHostPaths.IsohdpfxBin)
	if !bytes.Equal(img[:432], hd) || img[510] != 0x55 || img[511] != 0xaa {
		t.Fatal("MBR: no isohdpfx boot code or no signature")
	}
	if got := binary.LittleEndian.Uint32(img[432:]); got != boots[0].LBA*4 {
		t.Errorf("MBR boot file LBA %d, want %d", got, boots[0].LBA*4)
	}
	p1, p2 := img[446:462], img[462:478]
	if p1[0] != 0x80 || p1[4] != 0 || binary.LittleEndian.Uint32(p1[8:]) != 0 || int(binary.LittleEndian.Uint32(p1[12:])) != len(img)/512 {
		t.Errorf("MBR partition 1: % x", p1)
	}
	if p2[4] != 0xef || binary.LittleEndian.Uint32(p2[8:]) != boots[1].LBA*4 || int64(binary.LittleEndian.Uint32(p2[12:])) != res.ESPSize/512 {
		t.Errorf("MBR partition 2: % x", p2)
	}
	// GPT, primary and backup, with valid CRCs and the ESP.
	sectors := int64(len(img) / 512)
	for _, lba := range []int64{1, sectors - 1} {
		h := img[lba*512 : lba*512+512]
		if string(h[:8]) != "EFI PART" {
			t.Fatalf("GPT header at LBA %d missing", lba)
		}
		c := append([]byte{}, h[:92]...)
		binary.LittleEndian.PutUint32(c[16:], 0)
		if crc32.ChecksumIEEE(c) != binary.LittleEndian.Uint32(h[16:]) {
			t.Errorf("GPT header at LBA %d: bad CRC", lba)
		}
		ents := int64(binary.LittleEndian.Uint64(h[72:]))
		arr := img[ents*512 : ents*512+gptEntries*gptEntSize]
		if crc32.ChecksumIEEE(arr) != binary.LittleEndian.Uint32(h[88:]) {
			t.Errorf("GPT entries for header %d: bad CRC", lba)
		}
		if !bytes.Equal(arr[:16], guidESP[:]) || binary.LittleEndian.Uint64(arr[32:]) != uint64(boots[1].LBA)*4 {
			t.Errorf("GPT entry 1 is not the ESP")
		}
	}
	// Oracle: xorriso's reading of the same image, when installed.
	if x, err := exec.LookPath("xorriso"); err == nil {
		rep, err := exec.Command(x, "-indev", out, "-report_el_torito", "plain", "-report_system_area", "plain").CombinedOutput()
		if err != nil {
			t.Fatalf("xorriso: %v\n%s", err, rep)
		}
		for _, want := range []string{"BIOS  y   none", "UEFI  y   none", "/isolinux/isolinux.bin", "/boot/efiboot.img",
			"MBR isohybrid", "boot-info-table isohybrid-suitable",
			fmt.Sprintf("GPT start and size :   1  %d  %d", boots[1].LBA*4, res.ESPSize/512),
			fmt.Sprintf("MBR partition      :   2   0x00  0xef  %11d  %11d", boots[1].LBA*4, res.ESPSize/512)} {
			if !bytes.Contains(rep, []byte(want)) {
				t.Errorf("xorriso report lacks %q:\n%s", want, rep)
			}
		}
	}
}

// espFile extracts one file from an ESP image (checked with fsck.vfat).
func espFile(t *testing.T, esp []byte, name string) []byte {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "esp.img")
	os.WriteFile(p, esp, 0o644)
	fsck, err := hostTool("fsck.vfat", "dosfstools")
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(fsck, "-n", p).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n on the ESP: %v\n%s", err, msg)
	}
	out := filepath.Join(dir, "out")
	cmd := exec.Command("mcopy", "-i", p, "::"+name, out)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy %s from the ESP: %v\n%s", name, err, msg)
	}
	b, _ := os.ReadFile(out)
	return b
}

// checkShimESP checks the default ESP: shim, GRUB and MokManager as the
// distribution signed them, and the bootstrap configuration.
func checkShimESP(t *testing.T, esp []byte) {
	t.Helper()
	for name, host := range map[string]string{espLoader: DefaultHostPaths.Shim, espGrub: DefaultHostPaths.GrubCD,
		espMokManager: DefaultHostPaths.MokManager} {
		want, _ := os.ReadFile(host)
		if got := espFile(t, esp, name); !bytes.Equal(got, want) {
			t.Errorf("ESP %s differs from %s", name, host)
		}
	}
	if got := espFile(t, esp, espGrubConfig); !bytes.Equal(got, grubBootstrap) {
		t.Errorf("ESP %s:\n%s", espGrubConfig, got)
	}
}

// checkUKI checks a UKI section by section and its signature.
func checkUKI(t *testing.T, uki []byte, in inputs, cmdline string, cert *x509.Certificate) {
	t.Helper()
	f, err := pe.NewFile(bytes.NewReader(uki))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kernel, _ := os.ReadFile(in.kernel)
	initrd, _ := os.ReadFile(in.initrd)
	want := map[string][]byte{".linux": kernel, ".initrd": initrd, ".cmdline": []byte(cmdline)}
	var prevEnd uint32
	for _, s := range f.Sections {
		if s.VirtualAddress < prevEnd {
			t.Errorf("UKI section %s at %#x overlaps the previous one (ends %#x)", s.Name, s.VirtualAddress, prevEnd)
		}
		prevEnd = s.VirtualAddress + s.VirtualSize
		w, ok := want[s.Name]
		if !ok {
			continue
		}
		delete(want, s.Name)
		got, err := s.Data()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:s.VirtualSize], w) {
			t.Errorf("UKI section %s differs from its input", s.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("UKI lacks sections %v", want)
	}
	cs, _ := authenticode.ChecksumOffset(uki)
	if got, want := binary.LittleEndian.Uint32(uki[cs:]), authenticode.Checksum(uki, cs); got != want {
		t.Errorf("UKI PE checksum %#x, want %#x", got, want)
	}
	if err := authenticode.Verify(uki, cert); err != nil {
		t.Errorf("UKI signature: %v", err)
	}
}

// testKey makes an RSA key and certificate, as an organization's db key.
func testKey(t *testing.T, cn string) (keyFile, certFile string, cert *x509.Certificate) {
	k := authenticodetest.NewKey(t, cn)
	return k.KeyFile, k.CertFile, k.Cert
}

// TestISOOwnKey: with an organization's key the ESP holds one signed UKI,
// and the build stays reproducible.
func TestISOOwnKey(t *testing.T) {
	needHost(t)
	in := testInputs(t)
	key, crt, cert := testKey(t, "minint test db")
	var sums [2][32]byte
	for i := range sums {
		o := testOptions(in)
		o.SecureBootKey, o.SecureBootCert = key, crt
		out := filepath.Join(t.TempDir(), "m.iso")
		res, err := BuildISO(context.Background(), o, out)
		if err != nil {
			t.Fatal(err)
		}
		if res.Chain != ChainUKI {
			t.Fatalf("chain %q", res.Chain)
		}
		img, _ := os.ReadFile(out)
		sums[i] = sha256.Sum256(img)
		if i > 0 {
			continue
		}
		f, _ := os.Open(out)
		boots, err := ReadBootCatalog(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		esp := img[int64(boots[1].LBA)*2048 : int64(boots[1].LBA)*2048+res.ESPSize]
		checkUKI(t, espFile(t, esp, espLoader), in, res.Cmdline, cert)
		time.Sleep(1100 * time.Millisecond)
	}
	if sums[0] != sums[1] {
		t.Error("two signed builds from the same inputs differ")
	}
}

func TestISODeterministic(t *testing.T) {
	needHost(t)
	in := testInputs(t)
	var sums [2][32]byte
	for i := range sums {
		out := filepath.Join(t.TempDir(), "m.iso")
		if _, err := BuildISO(context.Background(), testOptions(in), out); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(out)
		sums[i] = sha256.Sum256(b)
		// Later builds see other clocks, ctimes and temp names.
		time.Sleep(1100 * time.Millisecond)
		os.Chtimes(in.kernel, time.Now(), time.Now())
	}
	if sums[0] != sums[1] {
		t.Fatalf("two builds from the same inputs differ: %x vs %x", sums[0], sums[1])
	}
	// And a different epoch gives a different image (the epoch is used).
	o := testOptions(in)
	o.Epoch = o.Epoch.Add(time.Hour)
	out := filepath.Join(t.TempDir(), "m.iso")
	if _, err := BuildISO(context.Background(), o, out); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if sha256.Sum256(b) == sums[0] {
		t.Fatal("the epoch does not reach the image")
	}
}

// TestSourceDateEpoch checks that SOURCE_DATE_EPOCH sets the dates.
func TestSourceDateEpoch(t *testing.T) {
	in := testInputs(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1600000000")
	o := testOptions(in)
	o.Epoch = time.Time{}
	p, err := NewPlan(o, true)
	if err != nil {
		t.Fatal(err)
	}
	if p.Epoch.Unix() != 1600000000 {
		t.Fatalf("epoch %v", p.Epoch)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := NewPlan(o, true); err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
		t.Fatalf("bad SOURCE_DATE_EPOCH: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	needHost(t)
	in := testInputs(t)
	key, crt, _ := testKey(t, "db")
	otherKey, _, _ := testKey(t, "other")
	dir := t.TempDir()
	out := filepath.Join(dir, "m.iso")
	cases := []struct {
		name   string
		mod    func(*Options)
		out    string
		is     error
		substr string
	}{
		{"missing kernel", func(o *Options) { o.Kernel = filepath.Join(dir, "nope") }, out, ErrInput, "kernel"},
		{"no kernel", func(o *Options) { o.Kernel = "" }, out, ErrInput, "no kernel"},
		{"kernel is a directory", func(o *Options) { o.Kernel = dir }, out, ErrInput, "not a regular file"},
		{"missing initramfs", func(o *Options) { o.Initramfs = filepath.Join(dir, "nope") }, out, ErrInput, "initramfs"},
		{"missing extra", func(o *Options) { o.ExtraFiles = []File{{Src: filepath.Join(dir, "nope"), Dest: "x"}} }, out, ErrInput, "/minint/x"},
		{"escaping extra", func(o *Options) { o.ExtraFiles = []File{{Src: in.seq, Dest: "../etc/passwd"}} }, out, ErrInput, "below /minint"},
		{"duplicate extra", func(o *Options) {
			o.ExtraFiles = []File{{Src: in.seq, Dest: "a"}, {Src: in.seq, Dest: "/a"}}
		}, out, ErrInput, "twice"},
		{"8.3 name clash", func(o *Options) {
			o.ExtraFiles = []File{{Src: in.seq, Dest: "images/install-part1.wim"}, {Src: in.seq, Dest: "images/install-part2.wim"}}
		}, out, ErrInput, "same ISO 9660 8.3 name"},
		{"8.3 signature clash", func(o *Options) {
			o.ExtraFiles = []File{{Src: in.seq, Dest: "image/manifest.json"}, {Src: in.seq, Dest: "image/manifest.json.sig"}}
		}, out, ErrInput, "add the signature as manifest.sig, the name the PE reads on the medium"},
		{"bad label", func(o *Options) { o.Label = "my disk" }, out, ErrInput, "label"},
		{"bad done", func(o *Options) { o.Done = "explode" }, out, ErrInput, "done"},
		{"unwritable output", func(o *Options) {}, "/nonexistent-dir/m.iso", ErrOutput, "/nonexistent-dir/m.iso"},
		{"output is a directory", func(o *Options) {}, dir, ErrOutput, "directory"},
		{"missing isolinux", func(o *Options) { o.Host.IsolinuxBin = "/nonexistent/isolinux.bin" }, out, ErrMissingHost, "package isolinux"},
		{"missing shim", func(o *Options) { o.Host.Shim = "/nonexistent/shimx64.efi.signed" }, out, ErrMissingHost, "package shim-signed"},
		{"missing GRUB", func(o *Options) { o.Host.GrubCD = "/nonexistent/gcdx64.efi.signed" }, out, ErrMissingHost, "package grub-efi-amd64-signed"},
		{"missing EFI stub", func(o *Options) {
			o.Host.EFIStub = "/nonexistent/linuxx64.efi.stub"
			o.SecureBootKey, o.SecureBootCert = key, crt
		}, out, ErrMissingHost, "package systemd-boot-efi"},
		{"key without certificate", func(o *Options) { o.SecureBootKey = key }, out, ErrInput, "both a key and a certificate"},
		{"key of another certificate", func(o *Options) { o.SecureBootKey, o.SecureBootCert = otherKey, crt }, out, ErrInput, "not the certificate's"},
		{"certificate as key", func(o *Options) { o.SecureBootKey, o.SecureBootCert = crt, crt }, out, ErrInput, "not a private key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := testOptions(in)
			c.mod(&o)
			_, err := BuildISO(context.Background(), o, c.out)
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.substr) {
				t.Fatalf("got %v; want %v mentioning %q", err, c.is, c.substr)
			}
			left, _ := os.ReadDir(dir)
			if len(left) != 0 {
				t.Fatalf("failed build left %v behind", left)
			}
		})
	}
	t.Run("missing program", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		_, err := BuildISO(context.Background(), testOptions(in), out)
		if !errors.Is(err, ErrMissingHost) || !strings.Contains(err.Error(), "program mcopy") || !strings.Contains(err.Error(), "package mtools") {
			t.Fatalf("got %v", err)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatal("output written")
		}
	})
}

func TestPEChecksumMatchesObjcopy(t *testing.T) {
	// objcopy computes the checksum itself; ours must agree on its output.
	needHost(t)
	in := testInputs(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "u.efi")
	cmd := exec.Command("objcopy", "--add-section", ".linux="+in.kernel, "--change-section-vma", ".linux=0x2000000",
		DefaultHostPaths.EFIStub, out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, msg)
	}
	b, _ := os.ReadFile(out)
	off := int(binary.LittleEndian.Uint32(b[0x3c:]))
	if got, want := authenticode.Checksum(b, off+24+64), binary.LittleEndian.Uint32(b[off+24+64:]); got != want {
		t.Fatalf("checksum %#x, objcopy wrote %#x", got, want)
	}
}

func FuzzParseBootCatalog(f *testing.F) {
	// Seeds: the catalog of a real build, and an empty sector.
	seed, err := os.ReadFile("testdata/bootcat.bin")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(make([]byte, 2048))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := parseBootCatalog(b)
		if err == nil && (len(entries) == 0 || len(entries) > len(b)/32) {
			t.Fatalf("%d entries from %d bytes", len(entries), len(b))
		}
	})
}

func TestBootCatalogSeed(t *testing.T) {
	b, err := os.ReadFile("testdata/bootcat.bin")
	if err != nil {
		t.Fatal(err)
	}
	e, err := parseBootCatalog(b)
	if err != nil || len(e) != 2 || e[0].Platform != PlatformBIOS || e[1].Platform != PlatformEFI {
		t.Fatalf("%+v %v", e, err)
	}
	b[5] ^= 1 // breaks the validation checksum
	if _, err := parseBootCatalog(b); !errors.Is(err, ErrFormat) {
		t.Fatalf("corrupt catalog: %v", err)
	}
}
