package main

import (
	"io"
	"testing"
	"time"

	"github.com/fanoutexport/fanoutexport/local/services"
	"github.com/google/go-cmp/cmp"
)

func TestParseArgs(t *testing.T) {
	t.Parallel()
	defaults := services.Defaults()
	otherRedis := services.Defaults()
	otherRedis[1].Port = 6380
	tests := []struct {
		name    string
		args    []string
		want    options
		wantErr bool
	}{
		{name: "ensure", args: []string{"ensure"}, want: options{"ensure", defaults, 15 * time.Minute}},
		{name: "flag after command", args: []string{"check", "-redis-port", "6380"}, want: options{"check", otherRedis, 15 * time.Minute}},
		{name: "flag before command", args: []string{"-timeout=1m", "ensure"}, want: options{"ensure", defaults, time.Minute}},
		{name: "no command", args: nil, wantErr: true},
		{name: "unknown command", args: []string{"start"}, wantErr: true},
		{name: "extra argument", args: []string{"ensure", "redis"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseArgs(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseArgs(%q) error = %v, want error %t", tt.args, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(options{})); diff != "" {
				t.Errorf("parseArgs(%q) mismatch (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}
