package access

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// statements holds the read statements of the authentication path,
// prepared once on the read pool: preparing one per request cost as much as
// the rest of a client-secret check. database/sql prepares a statement
// again on each connection that first runs it.
type statements struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// get returns the prepared statement for query, preparing it on first use.
func (st *statements) get(ctx context.Context, query string) (*sql.Stmt, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s, ok := st.m[query]; ok {
		return s, nil
	}
	s, err := st.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if st.m == nil {
		st.m = map[string]*sql.Stmt{}
	}
	st.m[query] = s
	return s, nil
}

// query runs a prepared query on the read pool.
func (st *statements) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := st.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// queryRow runs a prepared single-row query on the read pool; errors
// surface at Scan.
func (st *statements) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	s, err := st.get(ctx, query)
	if err != nil {
		// A Row carrying err, as database/sql makes for a failed query.
		return st.db.QueryRowContext(ctx, query, args...)
	}
	return s.QueryRowContext(ctx, args...)
}

func (st *statements) close() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	var errs []error
	for _, s := range st.m {
		errs = append(errs, s.Close())
	}
	st.m = nil
	return errors.Join(errs...)
}
