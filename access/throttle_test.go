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

// TestLockoutPerPairAndAccount: a few failures lock an account for their
// source only; many, from several sources, lock it for everyone; Unlock
// lifts both at once, and the locks show in the user's record meanwhile.
func TestLockoutPerPairAndAccount(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	env := openTestService(t, func(o *Options) {
		o.Now = clock.Now
		o.Lockout = LockoutPolicy{PairFailures: 3, AccountFailures: 6, SourceFailures: 100, BaseLock: time.Minute}
	})
	svc := env.svc
	if _, err := svc.AddUser(ctx, NewUser{Login: "alice", Password: "correct horse battery"}, "cli"); err != nil {
		t.Fatal(err)
	}
	a, b, c := netipAddr("192.0.2.1"), netipAddr("192.0.2.2"), netipAddr("192.0.2.3")
	login := func(pw string, src netip.Addr) error {
		_, err := svc.AuthenticateUser(ctx, UserCredentials{Login: "alice", Password: pw, Source: src})
		return err
	}
	for i := 0; i < 3; i++ {
		if err := login("wrong password!!", a); fault.CodeOf(err) != CodeUnauthenticated {
			t.Fatalf("failure %d from A: %v", i+1, err)
		}
	}
	if err := login("correct horse battery", a); fault.CodeOf(err) != CodeAccountLocked || !strings.Contains(err.Error(), `for "alice" from 192.0.2.1;`) {
		t.Fatalf("alice from A after three failures: %v", err)
	}
	if err := login("correct horse battery", b); err != nil {
		t.Fatalf("alice from B: %v", err)
	}
	// B's success cleared the account's count, so six more are needed:
	// three from B and three from C lock the account for every source.
	for _, src := range []netip.Addr{b, b, b, c, c} {
		login("wrong password!!", src)
	}
	clock.Add(2 * time.Minute) // A's and B's pair locks end; C has two failures, no lock
	if err := login("wrong password!!", c); fault.CodeOf(err) != CodeUnauthenticated {
		t.Fatalf("sixth failure: %v", err)
	}
	err := login("correct horse battery", netipAddr("198.51.100.1"))
	if fault.CodeOf(err) != CodeAccountLocked || !strings.Contains(err.Error(), `for "alice";`) {
		t.Fatalf("alice from a fresh source after six failures: %v", err)
	}
	u, err := svc.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, l := range u.Locks {
		sources = append(sources, l.Source)
		if !l.Until.After(clock.Now()) {
			t.Errorf("lock %+v has ended already", l)
		}
	}
	if strings.Join(sources, ",") != ",192.0.2.3" {
		t.Fatalf("alice's locks: %+v, want the account's and C's", u.Locks)
	}
	if n, err := svc.Unlock(ctx, KindUser, "alice", "cli:test"); err != nil || n != 2 {
		t.Fatalf("unlock: %d, %v", n, err)
	}
	for _, src := range []netip.Addr{a, c} {
		if err := login("correct horse battery", src); err != nil {
			t.Fatalf("alice from %s after unlock: %v", src, err)
		}
	}
	if _, err := svc.Unlock(ctx, KindUser, "nobody", "cli:test"); fault.CodeOf(err) != CodeUserUnknown {
		t.Fatalf("unlock of an unknown user: %v", err)
	}
}

// TestSessionEnds: a session ends at its lifetime even when in use, and
// after the idle timeout when not; presenting an ended token is refused
// without locking its source, since sealgate issued it.
func TestSessionEnds(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	env := openTestService(t, func(o *Options) {
		o.Now = clock.Now
		o.SessionTTL, o.SessionIdleTimeout = time.Hour, 10*time.Minute
		o.Lockout = LockoutPolicy{SourceFailures: 3}
	})
	svc := env.svc
	if _, err := svc.AddUser(ctx, NewUser{Login: "alice", Password: "correct horse battery"}, "cli"); err != nil {
		t.Fatal(err)
	}
	login := func() string {
		s, err := svc.Login(ctx, UserCredentials{Login: "alice", Password: "correct horse battery", Source: office})
		if err != nil || s.IdleTimeout != 10*time.Minute || !s.ExpiresAt.Equal(clock.Now().Add(time.Hour)) {
			t.Fatalf("login: %+v, %v", s, err)
		}
		return s.Token
	}
	tok := login()
	for i := 0; i < 6; i++ { // used every 9 minutes: alive until the hour is up
		clock.Add(9 * time.Minute)
		if _, err := svc.AuthenticateSession(ctx, tok, office); err != nil {
			t.Fatalf("session in use after %d minutes: %v", 9*(i+1), err)
		}
	}
	clock.Add(7 * time.Minute)
	ended := func(what, tok string) {
		t.Helper()
		for i := 0; i < 5; i++ {
			if _, err := svc.AuthenticateSession(ctx, tok, office); fault.CodeOf(err) != CodeUnauthenticated {
				t.Fatalf("%s, try %d: %v", what, i+1, err)
			}
		}
	}
	ended("session past its lifetime", tok)
	tok = login()
	clock.Add(11 * time.Minute)
	ended("session idle past its timeout", tok)
}
