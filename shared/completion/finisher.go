package completion

import (
	"context"
	"errors"

	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/output"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
)

// Finisher is what a function that makes records final (Aggregate,
// DeadLetter) holds beside its server's clients.
type Finisher struct {
	Records *record.Repo
	// Announce publishes the completion event of a record made (or found) final.
	Announce *Announcer
	// Store is the report bucket: the CSVs, and the segments a failed
	// report leaves.
	Store *output.Store
}

// SetupFinisher opens the clients o asks for, Cloud Storage included, and
// a Finisher on them; on failure everything opened is closed again.
func SetupFinisher(ctx context.Context, o serverenv.Options, c config.Completion, bucket string) (*serverenv.Env, Finisher, error) {
	o.Storage = true
	env, err := serverenv.Setup(ctx, o)
	if err != nil {
		return nil, Finisher{}, err
	}
	records := record.NewRepo(env.DB)
	ann, err := NewAnnouncer(records, env.Bus, env.Storage, c)
	if err != nil {
		return nil, Finisher{}, errors.Join(err, env.Close())
	}
	return env, Finisher{Records: records, Announce: ann, Store: output.NewStore(env.Storage, bucket)}, nil
}
