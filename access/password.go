package access

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are argon2id cost parameters (RFC 9106).
type PasswordParams struct {
	// MemoryKiB is the memory cost m in KiB.
	MemoryKiB uint32 `yaml:"memoryKiB"`
	// Time is the number of passes t.
	Time uint32 `yaml:"time"`
	// Threads is the parallelism p.
	Threads uint8 `yaml:"threads"`
}

// DefaultPasswordParams are m=64 MiB, t=2, p=2: RFC 9106's memory-constrained
// profile asks for 64 MiB; two passes and two lanes keep one check near
// 60 ms on a two-core server, so a burst of logins cannot starve sealing,
// while a stolen hash still costs an attacker 64 MiB per guess.
var DefaultPasswordParams = PasswordParams{MemoryKiB: 64 * 1024, Time: 2, Threads: 2}

const (
	argonSaltLen = 16
	argonKeyLen  = 32
)

var b64 = base64.RawStdEncoding

// passwordCheckMemory is the argon2id memory the default password gate
// allows at once: more CPUs than this covers add no concurrent checks.
const passwordCheckMemory = 256 << 20

// defaultPasswordChecks is the default concurrency of the password gate:
// a check per CPU, within passwordCheckMemory.
func defaultPasswordChecks(p PasswordParams) int {
	return max(1, min(runtime.GOMAXPROCS(0), passwordCheckMemory/(int(p.MemoryKiB)<<10)))
}

// hashing runs f, which computes argon2id, inside the password gate. Each
// run takes MemoryKiB (64 MiB by default), so only PasswordChecks.Concurrency
// run at once; a burst of logins queues briefly, then gets login_busy before
// any hashing, and the process's memory stays bounded by the gate.
func (s *Service) hashing(ctx context.Context, f func()) error {
	leave, err := s.hashGate.Enter(ctx)
	if err != nil {
		return err
	}
	defer leave()
	s.hashers.Add(1)
	f()
	// The run's memory is garbage now. Collected at once, the next run
	// reuses it rather than the heap growing to twice its peak.
	runtime.GC()
	if s.hashers.Add(-1) == 0 {
		s.release.Reset(releaseAfter)
	}
	return nil
}

// releaseAfter is how long no password check may run before the memory of
// past ones goes back to the system. Returning it after every check would
// make each login fault in 64 MiB afresh (about 100 ms more per login).
const releaseAfter = time.Second

// releaseMemory hands the memory of past password checks back to the
// system, so a burst of logins leaves no residue.
func (s *Service) releaseMemory() {
	if s.hashers.Load() == 0 {
		debug.FreeOSMemory()
	}
}

// newPasswordHash hashes a new password with the configured parameters.
func (s *Service) newPasswordHash(ctx context.Context, password string) (phc string, err error) {
	if gerr := s.hashing(ctx, func() { phc, err = hashPassword(password, s.opts.Password) }); gerr != nil {
		return "", gerr
	}
	return phc, err
}

// passwordMatches is checkPassword inside the password gate.
func (s *Service) passwordMatches(ctx context.Context, phc func() string, password string) (ok bool, err error) {
	err = s.hashing(ctx, func() { ok = checkPassword(phc(), password) })
	return ok, err
}

// hashPassword returns the PHC string
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash> (unpadded base64).
func hashPassword(password string, p PasswordParams) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("access: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// checkPassword reports whether password matches the PHC string phc, in
// time independent of where the two differ.
func checkPassword(phc, password string) bool {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	var p PasswordParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return false
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}
