package access

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/limit"
)

// TestPasswordChecksAreBounded: logins beyond the password gate's slots and
// queue are refused with login_busy and a retry time, before any hashing and
// without counting as failed logins; the others are checked as usual.
func TestPasswordChecksAreBounded(t *testing.T) {
	env := openTestService(t, func(o *Options) {
		o.PasswordChecks = limit.GateSettings{Concurrency: 1, Queue: 1, MaxWait: 20 * time.Millisecond}
		o.Password = PasswordParams{MemoryKiB: 32 * 1024, Time: 2, Threads: 1}
	})
	ctx := context.Background()
	const callers = 12
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			_, errs[i] = env.svc.AuthenticateUser(ctx, UserCredentials{Login: fmt.Sprintf("nobody-%d", i), Password: "wrong",
				Source: netipAddr(fmt.Sprintf("192.0.2.%d", i+1))})
		})
	}
	wg.Wait()
	var busy, refused int
	for i, err := range errs {
		switch f := fault.As(err); {
		case f != nil && f.Code == CodeLoginBusy:
			busy++
			if f.RetryAfter < time.Second {
				t.Errorf("caller %d: login_busy with RetryAfter %s", i, f.RetryAfter)
			}
		case f != nil && f.Code == CodeUnauthenticated:
			refused++
		default:
			t.Errorf("caller %d: %v, want unauthenticated or login_busy", i, err)
		}
	}
	if busy == 0 || refused == 0 {
		t.Fatalf("%d busy, %d checked: want both with 1 slot and 1 queued for %d callers", busy, refused, callers)
	}
	events, err := env.svc.AuditEvents(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, e := range events {
		if e.Type == "login" && e.Outcome == OutcomeFailed {
			failed++
		}
	}
	if failed != refused {
		t.Errorf("%d failed logins audited, want %d (busy refusals are not failures)", failed, refused)
	}
	// Once the burst is over, a password check runs again.
	if _, err := env.svc.AuthenticateUser(ctx, UserCredentials{Login: "nobody-0", Password: "wrong", Source: netipAddr("192.0.2.200")}); fault.CodeOf(err) != CodeUnauthenticated {
		t.Errorf("after the burst: %v", err)
	}
}
