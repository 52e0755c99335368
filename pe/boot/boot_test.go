package boot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/netconf"
)

func TestParseCmdline(t *testing.T) {
	o, err := ParseCmdline(`BOOT_IMAGE=/vmlinuz console=ttyS0,115200 console=tty0 minint.done=poweroff minint.media=abc123 minint.net=0 minint.debug quiet x="a b" minint.sequence=http://10.0.2.2:8080/seq.yaml minint.sequence-min-version=4.2 minint.var.site=lab minint.var.empty= minint.staged=UUID=0a1b2c3d-0000-4000-8000-00000000abcd minint.bench=unhashed-medium minint.url=http://192.0.2.1/pe minint.redo=1` + "\n")
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Done: DonePoweroff, Media: "abc123", Net: false, Shell: false, Debug: true, Redo: true,
		Sequence: "http://10.0.2.2:8080/seq.yaml", SequenceMinVersion: "4.2", URL: "http://192.0.2.1/pe", Staged: "0a1b2c3d-0000-4000-8000-00000000abcd", Vars: map[string]string{"site": "lab", "empty": ""},
		Rest:    map[string]string{"BOOT_IMAGE": "/vmlinuz", "console": "tty0", "quiet": "", "x": "a b"},
		Network: netconf.Config{DHCPAll: true}, FailWait: DefaultFailWait, Serial: SerialLines, Bench: "unhashed-medium"}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("got  %+v\nwant %+v", o, want)
	}
}

func TestParseCmdlineDefaults(t *testing.T) {
	o, err := ParseCmdline("console=ttyS0")
	if err != nil {
		t.Fatal(err)
	}
	if o.Done != DoneShell || !o.Net || o.Shell || o.Debug || o.Redo || o.Media != "" || o.Bench != "" {
		t.Errorf("defaults wrong: %+v", o)
	}
	if o, err := ParseCmdline("minint.bench=unverified-medium"); err != nil || o.Bench != "unverified-medium" {
		t.Errorf("minint.bench=unverified-medium: %q, %v", o.Bench, err)
	}
}

func TestParseCmdlineBad(t *testing.T) {
	o, err := ParseCmdline("minint.done=explode minint.net=maybe minint.shell=1 minint.bogus=1 minint.sequence= minint.var.=x minint.staged=/dev/vda2 minint.staged=UUID= minint.sequence-min-version=4.x minint.bench=fast minint.url=")
	if err == nil {
		t.Fatal("no error for bad values")
	}
	for _, s := range []string{"minint.done", "explode", "minint.net", "minint.bogus", "minint.sequence needs a value", "minint.var.", `minint.staged="/dev/vda2"`, `minint.staged="UUID="`, `minint.sequence-min-version="4.x"`, `minint.bench="fast"`, "minint.url needs a value"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
	// The good options still apply; the bad ones keep their defaults.
	if o.Done != DoneShell || !o.Net || !o.Shell || o.Staged != "" || o.Bench != "" || o.URL != "" {
		t.Errorf("got %+v", o)
	}
	// Except a floor: dropping it would accept older sequences, keeping
	// it refuses every one (sign.Verify cannot compare with it).
	if o.SequenceMinVersion != "4.x" {
		t.Errorf("bad sequence floor dropped: %+v", o)
	}
}

func TestParseCmdlineNetwork(t *testing.T) {
	o, err := ParseCmdline("vlan=eth0.20:eth0 ip=192.0.2.10::192.0.2.1:24::eth0.20:none nameserver=192.0.2.53 minint.events=serial minint.failwait=5 minint.serial=screen")
	if err != nil || o.NetworkErr != nil {
		t.Fatal(err, o.NetworkErr)
	}
	if len(o.Network.Interfaces) != 1 || o.Network.Interfaces[0].VLAN != 20 || len(o.Network.DNS) != 1 || o.Events != "serial" || o.FailWait != 5 || o.Serial != SerialScreen {
		t.Errorf("got %+v", o)
	}
	if _, ok := o.Rest["ip"]; ok {
		t.Error("ip= left in Rest")
	}
	// A static address that does not parse is its own, fatal error; the
	// other options still parse.
	o, err = ParseCmdline("ip=192.0.2.999::192.0.2.1:24::eth0:none minint.done=poweroff minint.failwait=x")
	if !errors.Is(o.NetworkErr, netconf.ErrSyntax) || !strings.Contains(o.NetworkErr.Error(), "192.0.2.999") {
		t.Errorf("NetworkErr = %v", o.NetworkErr)
	}
	if err == nil || !strings.Contains(err.Error(), "minint.failwait") || o.Done != DonePoweroff || o.FailWait != DefaultFailWait {
		t.Errorf("err %v, options %+v", err, o)
	}
	if o, _ := ParseCmdline("ip=off"); o.Net {
		t.Error("ip=off leaves the network on")
	}
}

func isoImage(t *testing.T) []byte {
	b := make([]byte, 0x8800)
	copy(b[0x8001:], "CD001")
	return b
}

func fatImage(fat32 bool) []byte {
	b := make([]byte, 1024)
	b[0], b[1], b[2] = 0xEB, 0x3C, 0x90
	if fat32 {
		copy(b[82:], "FAT32   ")
	} else {
		copy(b[54:], "FAT16   ")
	}
	b[510], b[511] = 0x55, 0xAA
	return b
}

func TestDetect(t *testing.T) {
	mbr := make([]byte, 1024)
	mbr[510], mbr[511] = 0x55, 0xAA
	for _, c := range []struct {
		name string
		img  []byte
		want string
	}{
		{"iso", isoImage(t), "iso9660"},
		{"fat16", fatImage(false), "vfat"},
		{"fat32", fatImage(true), "vfat"},
		{"mbr", mbr, ""},
		{"short", []byte("x"), ""},
	} {
		if got := detect(strings.NewReader(string(c.img))); got != c.want {
			t.Errorf("%s: detect = %q, want %q", c.name, got, c.want)
		}
	}
}

// fakeMedia builds a /sys/class/block and /dev with image files, and a
// mount function that "mounts" a device by symlinking the directory of
// files that the test says it holds.
type fakeMedia struct {
	root     string
	contents map[string]string // device name -> media.json ("" = none)
	mounted  map[string]string
}

func newFake(t *testing.T, devs map[string][]byte, contents map[string]string) (*fakeMedia, *Finder) {
	root := t.TempDir()
	fm := &fakeMedia{root: root, contents: contents, mounted: map[string]string{}}
	for _, d := range []string{"sys/class/block", "dev"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	for name, img := range devs {
		os.MkdirAll(filepath.Join(root, "sys/class/block", name), 0o755)
		os.WriteFile(filepath.Join(root, "dev", name), img, 0o644)
	}
	mp := filepath.Join(root, "run/minint/media")
	f := &Finder{
		SysBlock: filepath.Join(root, "sys/class/block"), Dev: filepath.Join(root, "dev"), MountPoint: mp,
		Mount: func(dev, dir, fstype string) error {
			name := filepath.Base(dev)
			os.RemoveAll(dir)
			os.MkdirAll(filepath.Join(dir, "minint"), 0o755)
			if c := fm.contents[name]; c != "" {
				os.WriteFile(filepath.Join(dir, MediaFile), []byte(c), 0o644)
			}
			fm.mounted[dir] = name + ":" + fstype
			return nil
		},
		Unmount: func(dir string) error {
			if _, ok := fm.mounted[dir]; !ok {
				return errors.New("not mounted")
			}
			delete(fm.mounted, dir)
			os.RemoveAll(dir)
			return nil
		},
	}
	return fm, f
}

func TestFindMedium(t *testing.T) {
	fm, f := newFake(t,
		map[string][]byte{"sda": fatImage(true), "sda1": fatImage(false), "sr0": isoImage(t), "vda": make([]byte, 4096)},
		map[string]string{"sda1": `{"id":"other"}`, "sr0": `{"id":"want-me","label":"x"}`},
	)
	m, err := f.Find(context.Background(), "want-me", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(m.Device) != "sr0" || m.FSType != "iso9660" || m.ID != "want-me" || m.Info["label"] != "x" {
		t.Errorf("got %+v", m)
	}
	if got := fm.mounted[f.MountPoint]; got != "sr0:iso9660" {
		t.Errorf("mounted = %q, want the medium left mounted", got)
	}
	if len(fm.mounted) != 1 {
		t.Errorf("other probes left mounted: %v", fm.mounted)
	}
}

func TestFindAnyMedium(t *testing.T) {
	_, f := newFake(t, map[string][]byte{"sdb": fatImage(true)}, map[string]string{"sdb": `{"id":"x1"}`})
	m, err := f.Find(context.Background(), "", time.Second)
	if err != nil || m.ID != "x1" || m.FSType != "vfat" {
		t.Fatalf("got %+v, %v", m, err)
	}
}

func TestFindMediumMissing(t *testing.T) {
	fm, f := newFake(t, map[string][]byte{"sr0": isoImage(t)}, map[string]string{"sr0": `{"id":"other"}`})
	start := time.Now()
	_, err := f.Find(context.Background(), "want-me", 600*time.Millisecond)
	if !errors.Is(err, ErrNoMedium) {
		t.Fatalf("err = %v, want ErrNoMedium", err)
	}
	if time.Since(start) < 600*time.Millisecond {
		t.Error("gave up before the wait was over")
	}
	for _, s := range []string{`"want-me"`, "sr0", `"other"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
	if len(fm.mounted) != 0 {
		t.Errorf("left mounted: %v", fm.mounted)
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add(`console=ttyS0 minint.done=poweroff minint.media=abc x="a b" minint.net=0`)
	f.Add(`minint.debug "unterminated`)
	f.Fuzz(func(t *testing.T, s string) {
		o, _ := ParseCmdline(s)
		switch o.Done {
		case DoneShell, DonePoweroff, DoneReboot:
		default:
			t.Errorf("Done = %q from %q", o.Done, s)
		}
	})
}
