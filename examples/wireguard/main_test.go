package main

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A key pair for the tests (not used anywhere else).
const (
	testPrivate = "ILr4cpz+DPTz8rW1YHRWiIqgrWd8mXNmFZKVxH8nqmA="
	testPeer    = "3tw3Ft2gVnBHUt2ogCsi4ht9L4bwnxtxPt0pyPMN+Cs="
)

// A string shaped like a key but 21 bytes long: it must never show in an error.
const badKey = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="

func writeKeyFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "private.key")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadPrivateKey(t *testing.T) {
	want, _ := base64.StdEncoding.DecodeString(testPrivate)
	var warn bytes.Buffer
	// A file as `wg genkey > private.key` writes it, with its newline.
	k, err := readPrivateKey(writeKeyFile(t, testPrivate+"\n"), nil, &warn)
	if err != nil || !bytes.Equal(k, want) {
		t.Errorf("from a file: %x, %v", k, err)
	}
	if warn.Len() != 0 {
		t.Errorf("warning for a 0600 file: %s", warn.String())
	}
	// Standard input, with -private-key-file -.
	k, err = readPrivateKey("-", strings.NewReader(testPrivate+"\n"), &warn)
	if err != nil || !bytes.Equal(k, want) {
		t.Errorf("from standard input: %x, %v", k, err)
	}
	// Malformed keys: the error says so without the key.
	for _, bad := range []string{badKey, badKey + "\n", "not base64 at all " + badKey, "", testPrivate + testPrivate} {
		for _, from := range []string{"file", "stdin"} {
			var err error
			if from == "file" {
				_, err = readPrivateKey(writeKeyFile(t, bad), nil, io.Discard)
			} else {
				_, err = readPrivateKey("-", strings.NewReader(bad), io.Discard)
			}
			if err == nil || !strings.Contains(err.Error(), "invalid private key") {
				t.Errorf("key %q from %s: %v, want an invalid private key error", bad, from, err)
			} else if bad != "" && (strings.Contains(err.Error(), badKey) || strings.Contains(err.Error(), testPrivate)) {
				t.Errorf("key from %s: the error shows the key: %v", from, err)
			}
		}
	}
	if _, err := readPrivateKey(filepath.Join(t.TempDir(), "nothere"), nil, io.Discard); err == nil {
		t.Error("a missing file gave no error")
	}
	// A key file that others can read works, with a warning (as wg gives).
	if runtime.GOOS != "windows" {
		path := writeKeyFile(t, testPrivate)
		os.Chmod(path, 0o644)
		warn.Reset()
		if _, err := readPrivateKey(path, nil, &warn); err != nil || !strings.Contains(warn.String(), "chmod 600") {
			t.Errorf("a 0644 key file: %v, warning %q", err, warn.String())
		}
		if strings.Contains(warn.String(), testPrivate) {
			t.Errorf("the warning shows the key: %s", warn.String())
		}
	}
}

// TestNoKeyOnCommandLine checks that no flag takes a private key: a key given on the
// command line is refused, with the reason and without the key, before anything is
// read or created.
func TestNoKeyOnCommandLine(t *testing.T) {
	fs, _ := newFlagSet(io.Discard)
	if fs.Lookup("private-key-file") == nil {
		t.Fatal("no -private-key-file flag")
	}
	fs.VisitAll(func(f *flag.Flag) {
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); strings.Contains(f.Name, "key") &&
			f.Name != "private-key-file" && f.Name != "genkey" && f.Name != "pubkey" && (!ok || !b.IsBoolFlag()) {
			t.Errorf("flag -%s takes a value", f.Name)
		}
	})
	for _, args := range [][]string{
		{"-key", testPrivate}, {"-key=" + testPrivate}, {"--key", testPrivate},
		{"-private-key", testPrivate}, {"-private-key=" + testPrivate}, {"-peer", testPeer, testPrivate},
	} {
		_, err := parseArgs(args, strings.NewReader(""), io.Discard)
		if err == nil || strings.Contains(err.Error(), testPrivate) {
			t.Errorf("%q: %v; want an error without the key", args[0], err)
			continue
		}
		if strings.Contains(args[0], "key") && !strings.Contains(err.Error(), "/proc") {
			t.Errorf("%q: %v; want the reason (/proc/PID/cmdline)", args[0], err)
		}
	}
}

func TestParseArgs(t *testing.T) {
	keyFile := writeKeyFile(t, testPrivate+"\n")
	c, err := parseArgs([]string{"-private-key-file", keyFile, "-peer", testPeer, "-address", "10.100.0.1/24",
		"-endpoint", "192.0.2.2:51820", "-allowed-ips", "10.100.0.2/32, fd00:100::2/128"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := base64.StdEncoding.DecodeString(testPrivate)
	peer, _ := base64.StdEncoding.DecodeString(testPeer)
	want := "private_key=" + hex.EncodeToString(priv) + "\nlisten_port=51820\npublic_key=" + hex.EncodeToString(peer) +
		"\nendpoint=192.0.2.2:51820\nallowed_ip=10.100.0.2/32\nallowed_ip=fd00:100::2/128\n"
	if c.uapi != want || c.address.String() != "10.100.0.1/24" || c.name != "wg0" {
		t.Errorf("config %+v\nuapi:\n%s\nwant:\n%s", c, c.uapi, want)
	}
	// Standard input.
	if _, err := parseArgs([]string{"-private-key-file", "-", "-peer", testPeer}, strings.NewReader(testPrivate), io.Discard); err != nil {
		t.Errorf("-private-key-file -: %v", err)
	}
	// Mistakes are errors that say what is wanted, before anything is created: no
	// panic for an address without its prefix length.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-peer", testPeer}, "-private-key-file"},
		{[]string{"-private-key-file", keyFile}, "-peer"},
		{[]string{"-private-key-file", keyFile, "-peer", badKey}, "invalid public key"},
		{[]string{"-private-key-file", keyFile, "-peer", testPeer, "-address", "10.100.0.1"}, "prefix length, like 10.100.0.1/24"},
		{[]string{"-private-key-file", keyFile, "-peer", testPeer, "-allowed-ips", "10.100.0.2"}, "-allowed-ips"},
		{[]string{"-private-key-file", keyFile, "-peer", testPeer, "-endpoint", "192.0.2.2"}, "-endpoint"},
		{[]string{"-private-key-file", keyFile, "-peer", testPeer, "-port", "70000"}, "-port"},
	} {
		_, err := parseArgs(c.args, strings.NewReader(""), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v; want an error about %s", c.args, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), badKey) {
			t.Errorf("%q: the error shows the key: %v", c.args, err)
		}
	}
}

// TestGenkeyPubkey checks the wg-like key commands: -genkey prints a private key alone,
// -pubkey reads one on standard input and prints its public key.
func TestGenkeyPubkey(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"-genkey"}, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	priv, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(out.String(), "\n"))
	if err != nil || len(priv) != 32 || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("-genkey printed %q", out.String())
	}
	k, _ := ecdh.X25519().NewPrivateKey(priv)
	out.Reset()
	if err := run([]string{"-pubkey"}, strings.NewReader(base64.StdEncoding.EncodeToString(priv)+"\n"), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if want := base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()) + "\n"; out.String() != want {
		t.Errorf("-pubkey printed %q, want %q", out.String(), want)
	}
	if err := run([]string{"-pubkey"}, strings.NewReader(badKey), io.Discard, io.Discard); err == nil || strings.Contains(err.Error(), badKey) {
		t.Errorf("-pubkey with a bad key: %v", err)
	}
}
