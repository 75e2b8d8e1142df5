// Package loopback gives tests HTTP clients that connect from chosen
// loopback addresses (127.0.0.2, 127.0.0.3, ...): Linux routes all of
// 127.0.0.0/8 to the loopback interface, so one machine can play several
// sources — an attacker, its victim, a reverse proxy — against a real server.
package loopback

import (
	"net"
	"net/http"
	"testing"
)

// Client returns an HTTP client whose connections come from address src.
func Client(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for a server a test starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
