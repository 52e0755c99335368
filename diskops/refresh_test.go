package diskops

import (
	"context"
	"errors"
	"strings"
	"testing"
)

const fakeRootUUID = "deadbeef-0102-0304-0506-0708090a0b0c" // gptWithExt4's

func TestFindFilesystem(t *testing.T) {
	root := fakeRoot(t, "", nvme, sata, virtio)
	d, p, err := FindFilesystem(context.Background(), DiscoverOptions{Root: root}, strings.ToUpper(fakeRootUUID))
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "nvme0n1" || p.Number != 2 || p.FS.Type != "ext4" {
		t.Errorf("found %s partition %d %+v", d.Name, p.Number, p.FS)
	}
	esp, err := FindESP(d)
	if err != nil {
		t.Fatal(err)
	}
	if esp.Number != 1 || esp.TypeName != "esp" {
		t.Errorf("ESP = %+v", esp)
	}

	_, _, err = FindFilesystem(context.Background(), DiscoverOptions{Root: root}, "0000aaaa-0102-0304-0506-0708090a0b0c")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), fakeRootUUID) || !strings.Contains(err.Error(), "0000aaaa") {
		t.Errorf("unknown UUID: %v; want ErrNotFound listing what was seen", err)
	}
	if _, _, err := FindFilesystem(context.Background(), DiscoverOptions{Root: root}, " "); !errors.Is(err, ErrNotFound) {
		t.Errorf("empty UUID: %v", err)
	}
	// The PE's own medium is never the staged root.
	_, _, err = FindFilesystem(context.Background(), DiscoverOptions{Root: root, BootDevices: []string{"nvme0n1"}}, fakeRootUUID)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("UUID on the boot medium: %v, want ErrNotFound", err)
	}
}

func TestFindFilesystemCloned(t *testing.T) {
	twin := virtio
	twin.image = gptWithExt4
	root := fakeRoot(t, "", nvme, twin)
	_, _, err := FindFilesystem(context.Background(), DiscoverOptions{Root: root}, fakeRootUUID)
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "nvme0n1") || !strings.Contains(err.Error(), "vda") {
		t.Errorf("two disks with the UUID: %v; want ErrAmbiguous naming both", err)
	}
}

func TestFindESPNoneOrMany(t *testing.T) {
	d := &Disk{Path: "/dev/vda", Table: &Table{Type: "gpt", Partitions: []PartitionInfo{{Number: 1, TypeName: "linux"}}}}
	if _, err := FindESP(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("no ESP: %v", err)
	}
	d.Table.Partitions = append(d.Table.Partitions, PartitionInfo{Number: 2, TypeName: "esp"}, PartitionInfo{Number: 3, TypeName: "esp", Device: "/dev/vda3"})
	if _, err := FindESP(d); !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "/dev/vda3") {
		t.Errorf("two ESPs: %v", err)
	}
}

func TestFindBootPartition(t *testing.T) {
	d := &Disk{Path: "/dev/sda", Table: &Table{Type: "mbr", Partitions: []PartitionInfo{
		{Number: 1, FS: &Filesystem{Type: "vfat"}}, {Number: 2, FS: &Filesystem{Type: "ext4"}}}}}
	p, err := FindBootPartition(d)
	if err != nil || p.Number != 1 {
		t.Fatalf("boot partition %+v, %v", p, err)
	}
	d.Table.Partitions = append(d.Table.Partitions, PartitionInfo{Number: 3, FS: &Filesystem{Type: "vfat"}})
	if _, err := FindBootPartition(d); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("two FAT partitions: %v", err)
	}
	d.Table.Partitions = d.Table.Partitions[1:2]
	if _, err := FindBootPartition(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("no FAT partition: %v", err)
	}
}
