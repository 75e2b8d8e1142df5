package access

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/fault"
)

func TestSourceLockoutCountsIPv6PerPrefix(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		prefix   int                // 0 for the default
		attacker func(i int) string // the address of the i-th failure
		locked   []string           // sources refused afterwards
		lockName string             // what the lock message names
		free     []string           // sources still let in
	}{
		{"IPv6 per /64 by default", 0, func(i int) string { return fmt.Sprintf("2001:db8:1:2::%x", i) },
			[]string{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::1"}, "2001:db8:1:2::/64",
			[]string{"2001:db8:1:3::1", "2001:db8:2:2::1", "192.0.2.10"}},
		{"IPv6 per /48", 48, func(i int) string { return fmt.Sprintf("2001:db8:1:%x::1", i) },
			[]string{"2001:db8:1:ffff::1"}, "2001:db8:1::/48",
			[]string{"2001:db8:2::1"}},
		{"IPv6 per address", 128, func(int) string { return "2001:db8::1" },
			[]string{"2001:db8::1"}, "2001:db8::1/128",
			[]string{"2001:db8::2"}},
		{"IPv4 per address", 0, func(int) string { return "192.0.2.20" },
			[]string{"192.0.2.20", "::ffff:192.0.2.20"}, "192.0.2.20",
			[]string{"192.0.2.21"}},
		{"IPv4 addresses are not grouped", 0, func(i int) string { return fmt.Sprintf("192.0.2.%d", i) },
			nil, "",
			[]string{"192.0.2.21", "::ffff:192.0.2.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := openTestService(t, func(o *Options) { o.Lockout = LockoutPolicy{IPv6Prefix: tt.prefix} })
			if _, err := env.svc.AddUser(ctx, NewUser{Login: "alice", Password: "correct horse battery"}, "cli"); err != nil {
				t.Fatal(err)
			}
			login := func(name, pw, src string) error {
				_, err := env.svc.AuthenticateUser(ctx, UserCredentials{Login: name, Password: pw, Source: netip.MustParseAddr(src)})
				return err
			}
			// 20 failures (the default threshold), each for another name so
			// that no account locks.
			for i := 1; i <= 20; i++ {
				if err := login(fmt.Sprintf("guess%d", i), "wrong password!!", tt.attacker(i)); fault.CodeOf(err) != CodeUnauthenticated {
					t.Fatalf("failure %d from %s: %v", i, tt.attacker(i), err)
				}
			}
			for _, src := range tt.locked {
				err := login("alice", "correct horse battery", src)
				if fault.CodeOf(err) != CodeAccountLocked || !strings.Contains(err.Error(), "from "+tt.lockName+";") ||
					fault.As(err).RetryAfter > time.Minute || fault.As(err).RetryAfter < 50*time.Second {
					t.Errorf("alice from %s: %v, want %s naming %s", src, err, CodeAccountLocked, tt.lockName)
				}
			}
			for _, src := range tt.free {
				if err := login("alice", "correct horse battery", src); err != nil {
					t.Errorf("alice from %s: %v", src, err)
				}
			}
		})
	}
}
