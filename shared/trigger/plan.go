package trigger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
)

// Planner splits reports into key-range parts (report.Split) with DrainTriggers'
//
//	PART_ROWS and MAX_PARTS, over pools of the source databases it
//
// opens on first use (DSN_{DATABASE}) and keeps until Close.
type Planner struct {
	PartRows int64
	MaxParts int
	MaxConns int

	mu  sync.Mutex
	dbs map[string]*sql.DB
}

// NewPlanner returns the planner of cfg; nothing is opened yet.
func NewPlanner(cfg config.DrainTriggers) *Planner {
	return &Planner{PartRows: cfg.PartRows, MaxParts: cfg.MaxParts, MaxConns: cfg.DB.MaxConns}
}

// Plan splits report r for params p. With MAX_PARTS 1, or a report that
// declares no split, it is one part and touches no database.
func (pl *Planner) Plan(ctx context.Context, r report.Report, p report.Params) (report.Plan, error) {
	if pl == nil || pl.MaxParts <= 1 || r.SplitBy == nil {
		return report.Plan{Parts: []report.Bounds{{}}, Estimated: []int64{0}}, nil
	}
	return report.Split(ctx, r, p, pl.db, pl.PartRows, pl.MaxParts)
}

func (pl *Planner) db(database string) (*sql.DB, error) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if db, ok := pl.dbs[database]; ok {
		return db, nil
	}
	dsn, err := config.SourceDSN(database)
	if err != nil {
		return nil, err
	}
	db, err := serverenv.OpenDBPool(dsn, pl.MaxConns)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", report.DSNEnv(database), err)
	}
	if pl.dbs == nil {
		pl.dbs = map[string]*sql.DB{}
	}
	pl.dbs[database] = db
	return db, nil
}

// Close closes the pools the planner opened.
func (pl *Planner) Close() error {
	if pl == nil {
		return nil
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var errs []error
	for _, db := range pl.dbs {
		errs = append(errs, db.Close())
	}
	pl.dbs = nil
	return errors.Join(errs...)
}
