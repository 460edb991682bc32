package tokenstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Fields are the logical columns of a token table (Axon's TokenSchema names them so).
var Fields = []string{"processorName", "segment", "token", "tokenType", "timestamp", "owner", "mask"}

// columnCandidates are the names each field has in the layouts Axon creates: JdbcTokenStore's unquoted
// camelCase folded to lower case, and Hibernate's names with Spring Boot's naming strategy (snake_case)
// and without it (lower case). mask exists only in Axon Framework 5.
var columnCandidates = map[string][]string{
	"processorName": {"processorname", "processor_name"},
	"segment":       {"segment"},
	"token":         {"token"},
	"tokenType":     {"tokentype", "token_type"},
	"timestamp":     {"timestamp"},
	"owner":         {"owner"},
	"mask":          {"mask"},
}

// defaultTables are the table names of those layouts.
var defaultTables = []string{"tokenentry", "token_entry"}

var (
	// ErrConnect: the database cannot be reached or refuses the login.
	ErrConnect = errors.New("cannot connect to")
	// ErrPermission: the database user may not read or change the token table.
	ErrPermission = errors.New("no privilege")
)

// classify marks PostgreSQL's insufficient_privilege (SQLSTATE 42501) with ErrPermission.
func classify(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" {
		return fmt.Errorf("%w: %w", ErrPermission, err)
	}
	return err
}

// PostgresOptions override what OpenPostgres finds in the catalogue, for a custom TokenSchema.
type PostgresOptions struct {
	Table   string            // [schema.]table
	Columns map[string]string // field (see Fields) → column name
}

// Postgres is a token table in PostgreSQL.
type Postgres struct {
	conn        *pgx.Conn
	schema      string
	table       string
	cols        map[string]string // field → column; mask absent without one
	largeObject bool              // the token column is an oid (Hibernate's @Lob byte[] on PostgreSQL)
	where       string            // host, port, database, user: no password
}

// OpenPostgres connects with a PostgreSQL URL or key=value DSN (libpq's forms; the password comes from
// $PGPASSWORD or the password file, as with libpq) and finds the token table in the catalogue.
func OpenPostgres(ctx context.Context, connString string, opts PostgresOptions) (*Postgres, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("database connection string: %s", redactParseError(err))
	}
	where := fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrConnect, where, err)
	}
	p := &Postgres{conn: conn, where: where}
	// A live processor holds its rows locked only for a moment; waiting longer than this means
	// something else holds them, and a clear error beats hanging.
	if _, err := conn.Exec(ctx, "SET lock_timeout = '10s'"); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if err := p.discover(ctx, opts); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	return p, nil
}

// redactParseError keeps a password that a malformed connection string carries out of the message:
// pgx quotes the string it could not parse.
func redactParseError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "cannot parse `"); i >= 0 {
		if j := strings.Index(msg[i+14:], "`"); j >= 0 {
			return msg[:i] + "cannot parse the string" + msg[i+14+j+1:]
		}
	}
	return msg
}

// PasswordInConnString reports whether a connection string carries a password, which the command line
// refuses ($PGPASSWORD or a password file carry it instead, out of sight of ps and shell history).
func PasswordInConnString(s string) bool {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return strings.Contains(s, "password") || strings.Count(s[:strings.Index(s, "@")+1], ":") > 1
		}
		if _, ok := u.User.Password(); ok {
			return true
		}
		return u.Query().Has("password")
	}
	for _, f := range strings.Fields(s) {
		if k, _, ok := strings.Cut(f, "="); ok && strings.TrimSpace(k) == "password" {
			return true
		}
	}
	return strings.Contains(s, "password =") || strings.Contains(s, "password=")
}

type column struct{ schema, table, name, dataType string }

func (p *Postgres) discover(ctx context.Context, opts PostgresOptions) error {
	wantSchema, wantTable := "", ""
	if opts.Table != "" {
		wantTable = opts.Table
		if s, t, ok := strings.Cut(opts.Table, "."); ok {
			wantSchema, wantTable = s, t
		}
	}
	rows, err := p.conn.Query(ctx, `SELECT table_schema, table_name, column_name, data_type
		FROM information_schema.columns
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
		  AND ($1 = '' OR table_schema = $1)
		  AND (CASE WHEN $2 = '' THEN lower(table_name) = ANY($3) ELSE table_name = $2 OR table_name = lower($2) END)
		ORDER BY table_schema, table_name, ordinal_position`, wantSchema, wantTable, defaultTables)
	if err != nil {
		return fmt.Errorf("%s: read the catalogue: %w", p.where, err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var c column
		return c, r.Scan(&c.schema, &c.table, &c.name, &c.dataType)
	})
	if err != nil {
		return fmt.Errorf("%s: read the catalogue: %w", p.where, err)
	}
	tables := map[string][]column{}
	for _, c := range cols {
		key := c.schema + "." + c.table
		tables[key] = append(tables[key], c)
	}
	var names []string
	for k := range tables {
		names = append(names, k)
	}
	sort.Strings(names)
	switch {
	case len(names) == 0 && opts.Table != "":
		return fmt.Errorf("%w: %s: no table %s (or no privilege on it)", ErrNotTokenTable, p.where, opts.Table)
	case len(names) == 0:
		return fmt.Errorf("%w: %s: no token table (looked for %s in every schema; --table names another)", ErrNotTokenTable, p.where, strings.Join(defaultTables, ", "))
	case len(names) > 1:
		return fmt.Errorf("%w: %s: several token tables (%s): choose one with --table", ErrNotTokenTable, p.where, strings.Join(names, ", "))
	}
	found := tables[names[0]]
	p.schema, p.table = found[0].schema, found[0].table
	byName := map[string]column{}
	for _, c := range found {
		byName[c.name] = c
	}
	p.cols = map[string]string{}
	for _, field := range Fields {
		candidates := columnCandidates[field]
		if o, ok := opts.Columns[field]; ok {
			candidates = []string{o}
		}
		for _, c := range candidates {
			if _, ok := byName[c]; ok {
				p.cols[field] = c
				break
			}
		}
		if _, ok := p.cols[field]; !ok && field != "mask" {
			return fmt.Errorf("%w: %s has no %s column (looked for %s; --column %s=NAME names it)", ErrNotTokenTable, p.qualified(), field, strings.Join(candidates, ", "), field)
		}
	}
	switch dt := byName[p.cols["token"]].dataType; dt {
	case "bytea":
	case "oid":
		p.largeObject = true
	default:
		return fmt.Errorf("%w: %s: column %s is %s, not bytea or oid", ErrNotTokenTable, p.qualified(), p.cols["token"], dt)
	}
	return nil
}

func (p *Postgres) qualified() string { return p.schema + "." + p.table }

// Table names the table.
func (p *Postgres) Table() string { return p.qualified() }

func (p *Postgres) ident(field string) string { return pgx.Identifier{p.cols[field]}.Sanitize() }

func (p *Postgres) tableIdent() string { return pgx.Identifier{p.schema, p.table}.Sanitize() }

// Describe names the table and its layout.
func (p *Postgres) Describe() string {
	kind := "bytea"
	if p.largeObject {
		kind = "oid (large objects)"
	}
	s := fmt.Sprintf("%s table %s, token column %s %s", p.where, p.qualified(), p.cols["token"], kind)
	if _, ok := p.cols["mask"]; ok {
		s += ", mask column (Axon Framework 5)"
	}
	return s
}

// LargeObjects reports whether tokens are large objects.
func (p *Postgres) LargeObjects() bool { return p.largeObject }

func (p *Postgres) Close(ctx context.Context) error { return p.conn.Close(ctx) }

func (p *Postgres) selectSQL(lock bool) string {
	mask := "NULL::integer"
	if _, ok := p.cols["mask"]; ok {
		mask = p.ident("mask")
	}
	token := p.ident("token")
	if p.largeObject {
		token += "::bigint"
	}
	q := fmt.Sprintf("SELECT %s, %s, %s, %s, %s, %s, %s FROM %s ORDER BY 1, 2",
		p.ident("processorName"), p.ident("segment"), mask, p.ident("tokenType"), p.ident("timestamp"),
		p.ident("owner"), token, p.tableIdent())
	if lock {
		q += " FOR UPDATE"
	}
	return q
}

// pgRow is a row with the large object its token is in, if the column is an oid.
type pgRow struct {
	Row
	oid *int64
}

func (p *Postgres) read(ctx context.Context, q pgxQuerier, lock bool) ([]pgRow, error) {
	rows, err := q.Query(ctx, p.selectSQL(lock))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p.qualified(), classify(err))
	}
	var out []pgRow
	for rows.Next() {
		var r pgRow
		var segment int64
		var mask *int64
		dest := []any{&r.Processor, &segment, &mask, &r.TokenType, &r.Timestamp, &r.Owner, &r.Token}
		if p.largeObject {
			dest[6] = &r.oid
		}
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read %s: %w", p.qualified(), classify(err))
		}
		r.Segment = int32(segment)
		if mask != nil {
			m := int32(*mask)
			r.Mask = &m
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", p.qualified(), classify(err))
	}
	if p.largeObject {
		for i := range out {
			if out[i].oid == nil {
				continue
			}
			if err := q.QueryRow(ctx, "SELECT lo_get($1::oid)", *out[i].oid).Scan(&out[i].Token); err != nil {
				return nil, fmt.Errorf("read %s: %s: token large object %d: %w", p.qualified(), out[i].Row, *out[i].oid, err)
			}
			if out[i].Token == nil {
				out[i].Token = []byte{}
			}
		}
	}
	return out, nil
}

// pgxQuerier is what read needs of a connection or transaction.
type pgxQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Read reads every row without locking.
func (p *Postgres) Read(ctx context.Context) ([]Row, error) {
	rows, err := p.read(ctx, p.conn, false)
	if err != nil {
		return nil, err
	}
	out := make([]Row, len(rows))
	for i, r := range rows {
		out[i] = r.Row
	}
	return out, nil
}

// Begin starts a transaction.
func (p *Postgres) Begin(ctx context.Context) (Tx, error) {
	tx, err := p.conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: begin: %w", p.where, err)
	}
	return &pgTx{p: p, tx: tx, oids: map[string]*int64{}}, nil
}

type pgTx struct {
	p    *Postgres
	tx   pgx.Tx
	oids map[string]*int64 // row → its large object, as read
}

func (t *pgTx) Rows(ctx context.Context) ([]Row, error) {
	rows, err := t.p.read(ctx, t.tx, true)
	if err != nil {
		return nil, err
	}
	out := make([]Row, len(rows))
	for i, r := range rows {
		out[i] = r.Row
		t.oids[r.Row.String()] = r.oid
	}
	return out, nil
}

// tokenValue is what goes into the token column: the bytes, or a new large object holding them.
func (t *pgTx) tokenValue(ctx context.Context, row Row) (any, error) {
	if !t.p.largeObject || row.Token == nil {
		return row.Token, nil
	}
	var oid int64
	if err := t.tx.QueryRow(ctx, "SELECT lo_from_bytea(0, $1)::bigint", row.Token).Scan(&oid); err != nil {
		return nil, fmt.Errorf("%s: write the token's large object: %w", row, err)
	}
	return oid, nil
}

func (t *pgTx) Update(ctx context.Context, row Row) error {
	p := t.p
	value, err := t.tokenValue(ctx, row)
	if err != nil {
		return err
	}
	cast := ""
	if p.largeObject {
		cast = "::oid"
	}
	tag, err := t.tx.Exec(ctx, fmt.Sprintf("UPDATE %s SET %s = $1%s, %s = $2, %s = $3, %s = $4 WHERE %s = $5 AND %s = $6",
		p.tableIdent(), p.ident("token"), cast, p.ident("tokenType"), p.ident("timestamp"), p.ident("owner"),
		p.ident("processorName"), p.ident("segment")),
		value, row.TokenType, row.Timestamp, row.Owner, row.Processor, row.Segment)
	if err != nil {
		return fmt.Errorf("update %s %s: %w", p.qualified(), row, classify(err))
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("update %s %s: %d rows matched, want 1", p.qualified(), row, tag.RowsAffected())
	}
	// The old large object is garbage once no row refers to it (what vacuumlo would remove later).
	if old := t.oids[row.String()]; p.largeObject && old != nil {
		var refs int64
		if err := t.tx.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s = $1::oid", p.tableIdent(), p.ident("token")), *old).Scan(&refs); err != nil {
			return fmt.Errorf("%s: %w", row, err)
		}
		if refs == 0 {
			if _, err := t.tx.Exec(ctx, "SELECT lo_unlink($1::oid)", *old); err != nil {
				return fmt.Errorf("%s: unlink the old token's large object %d: %w", row, *old, err)
			}
		}
		t.oids[row.String()] = nil
	}
	return nil
}

func (t *pgTx) Insert(ctx context.Context, row Row) error {
	p := t.p
	value, err := t.tokenValue(ctx, row)
	if err != nil {
		return err
	}
	cast := ""
	if p.largeObject {
		cast = "::oid"
	}
	cols := []string{p.ident("processorName"), p.ident("segment"), p.ident("token"), p.ident("tokenType"), p.ident("timestamp"), p.ident("owner")}
	args := []any{row.Processor, row.Segment, value, row.TokenType, row.Timestamp, row.Owner}
	if _, ok := p.cols["mask"]; ok {
		if row.Mask == nil {
			return fmt.Errorf("insert %s %s: the table has a mask column, the row none", p.qualified(), row)
		}
		cols = append(cols, p.ident("mask"))
		args = append(args, *row.Mask)
	}
	ph := make([]string, len(args))
	for i := range ph {
		ph[i] = fmt.Sprintf("$%d", i+1)
	}
	ph[2] += cast
	if _, err := t.tx.Exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", p.tableIdent(), strings.Join(cols, ", "), strings.Join(ph, ", ")), args...); err != nil {
		return fmt.Errorf("insert %s %s: %w", p.qualified(), row, classify(err))
	}
	return nil
}

func (t *pgTx) Commit(ctx context.Context) error {
	if err := t.tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit %s: %w", t.p.qualified(), err)
	}
	return nil
}

func (t *pgTx) Rollback(ctx context.Context) error {
	err := t.tx.Rollback(ctx)
	if errors.Is(err, pgx.ErrTxClosed) {
		return nil
	}
	return err
}
