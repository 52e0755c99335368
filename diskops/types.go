package diskops

import (
	"fmt"
	"strconv"
	"strings"
)

// partType is a partition type minint knows by a short name.
type partType struct {
	name string
	gpt  string // type GUID, lower case
	mbr  byte   // 0 when the type has no MBR equivalent
}

var partTypes = []partType{
	{"esp", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", 0xEF},
	{"linux", "0fc63daf-8483-4772-8e79-3d69d8477de4", 0x83},
	{"root-x86-64", "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", 0x83},
	{"bios-boot", "21686148-6449-6e6f-744e-656564454649", 0},
	{"swap", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", 0x82},
	{"msdata", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", 0x07},
	{"fat32", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", 0x0C},
	{"msr", "e3c9e316-0b5c-4db8-817d-f92df00215ae", 0},
	{"lvm", "e6d6d379-f507-44c2-a23c-238f2a3df928", 0x8E},
	{"home", "933ac7e1-2eb4-4f13-b844-0e14e2aef915", 0x83},
}

func gptTypeName(guid string) string {
	for _, t := range partTypes {
		if t.gpt == strings.ToLower(guid) {
			return t.name
		}
	}
	return ""
}

func mbrTypeName(b byte) string {
	for _, t := range partTypes {
		if t.mbr == b && t.name != "root-x86-64" && t.name != "home" && t.name != "fat32" {
			return t.name
		}
	}
	if b == 0x0C || b == 0x0B {
		return "fat32"
	}
	return ""
}

// resolveType turns a layout's type (a short name, a GUID for GPT, or a
// hex byte such as "0x83" for MBR) into the value for the table.
func resolveType(table, typ string) (guid string, mbr byte, err error) {
	t := strings.ToLower(strings.TrimSpace(typ))
	if t == "" {
		t = "linux"
	}
	for _, pt := range partTypes {
		if pt.name == t {
			if table == "mbr" && pt.mbr == 0 {
				return "", 0, fmt.Errorf("type %q has no MBR equivalent", typ)
			}
			return pt.gpt, pt.mbr, nil
		}
	}
	if table == "gpt" && len(t) == 36 && strings.Count(t, "-") == 4 {
		return t, 0, nil
	}
	if table == "mbr" {
		if v, err := strconv.ParseUint(strings.TrimPrefix(t, "0x"), 16, 8); err == nil && v != 0 && v != 0xEE {
			return "", byte(v), nil
		}
	}
	names := make([]string, len(partTypes))
	for i, pt := range partTypes {
		names[i] = pt.name
	}
	return "", 0, fmt.Errorf("unknown %s partition type %q (known: %s, or a %s)", table, typ, strings.Join(names, ", "),
		map[string]string{"gpt": "type GUID", "mbr": "hex byte such as 0x83"}[table])
}
