package kmod

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestColdplugParallel: the drivers of the devices found load at once
// (each waits for its probe in the kernel), dependencies still before
// the modules that need them, a dependency shared by two drivers loaded
// without error, and a module that appears with a device a driver
// created is loaded in the next round. Run with -race.
func TestColdplugParallel(t *testing.T) {
	dir := t.TempDir()
	mods := []string{"virtio", "virtio_ring", "virtio_pci", "virtio_blk", "virtio_net", "ata_piix", "libata", "sr_mod"}
	for _, m := range mods {
		os.WriteFile(filepath.Join(dir, m+".ko"), []byte(m), 0o644)
	}
	dep := strings.Join([]string{
		"virtio.ko:", "virtio_ring.ko:", "libata.ko:", "sr_mod.ko:",
		"virtio_pci.ko: virtio_ring.ko virtio.ko",
		"virtio_blk.ko: virtio_ring.ko virtio.ko",
		"virtio_net.ko: virtio_ring.ko virtio.ko",
		"ata_piix.ko: libata.ko",
	}, "\n") + "\n"
	alias := "alias pci:v00001AF4d* virtio_pci\nalias pci:v00008086d00007010* ata_piix\n" +
		"alias virtio:d00000002v* virtio_blk\nalias virtio:d00000001v* virtio_net\nalias scsi:t-0x05* sr_mod\n"
	db, err := parse(strings.NewReader(dep), strings.NewReader(alias), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Dir = dir

	sys := t.TempDir()
	device := func(path, modalias string) {
		p := filepath.Join(sys, path)
		os.MkdirAll(p, 0o755)
		os.WriteFile(filepath.Join(p, "modalias"), []byte(modalias+"\n"), 0o644)
	}
	device("pci0000:00/0000:00:01.1", "pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80")
	device("pci0000:00/0000:00:04.0", "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00")

	var mu sync.Mutex
	loaded := map[string]bool{}
	inFlight := map[string]chan struct{}{}
	running, most := 0, 0
	var order []string
	finitModule = func(fd int, params string, flags int) error {
		b := make([]byte, 32)
		n, _ := unix.Pread(fd, b, 0)
		m := string(b[:n])
		mu.Lock()
		for _, d := range db.deps[m] {
			if !loaded[d] {
				t.Errorf("%s loaded before its dependency %s", m, d)
			}
		}
		// As the kernel does: a second load of a module waits for the
		// first and gets EEXIST.
		if ch, ok := inFlight[m]; ok {
			mu.Unlock()
			<-ch
			return unix.EEXIST
		}
		if loaded[m] {
			mu.Unlock()
			return unix.EEXIST
		}
		inFlight[m] = make(chan struct{})
		driver := !strings.HasPrefix(m, "virtio_ring") && m != "virtio" && m != "libata"
		if driver {
			running++
			most = max(most, running)
		}
		mu.Unlock()
		time.Sleep(50 * time.Millisecond) // the driver probing its devices
		mu.Lock()
		defer mu.Unlock()
		if driver {
			running--
		}
		loaded[m] = true
		close(inFlight[m])
		delete(inFlight, m)
		order = append(order, m)
		switch m {
		case "virtio_pci": // the virtio bus appears, with a disk and a NIC
			device("pci0000:00/0000:00:04.0/virtio0", "virtio:d00000002v00001AF4")
			device("pci0000:00/0000:00:03.0/virtio1", "virtio:d00000001v00001AF4")
		case "ata_piix": // the CD drive behind it
			device("pci0000:00/0000:00:01.1/ata1/host0/target0:0:0/0:0:0:0", "scsi:t-0x05")
		}
		return nil
	}
	t.Cleanup(func() { finitModule = unix.FinitModule })

	l := &Loader{DB: db, loaded: map[string]bool{}, failed: map[string]error{}, took: map[string]time.Duration{}}
	// The PE loads file-system modules in the background meanwhile.
	var wg sync.WaitGroup
	wg.Go(func() { l.Load("virtio_ring", "libata") })
	got, err := l.Coldplug(sys, 8)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := "ata_piix sr_mod virtio_blk virtio_net virtio_pci"
	if strings.Join(got, " ") != want {
		t.Errorf("Coldplug loaded %q, want %q", got, want)
	}
	if len(order) != len(mods) {
		t.Errorf("finit_module succeeded for %v, want each of %v once", order, mods)
	}
	if most < 2 {
		t.Errorf("at most %d drivers loaded at once: they were loaded one after another", most)
	}
	for _, m := range strings.Fields(want) {
		if l.Took()[m] <= 0 {
			t.Errorf("Took has no time for %s: %v", m, l.Took())
		}
	}
}
