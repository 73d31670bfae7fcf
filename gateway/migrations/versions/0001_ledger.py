"""Ledger: accounts, append-only balanced journal, hash chain head, period closes.

Revision ID: 0001_ledger
Revises:
Create Date: 2026-11-26

The database itself enforces what the books depend on, on both engines:
- journal rows (entries, lines, period closes) refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL);
- an entry can only be inserted after at least two lines whose debits equal credits, and no line
  can be added to an entry once written (PostgreSQL also re-checks at commit with a deferred
  constraint trigger);
- a closed account refuses lines; an effective date in a closed period is refused;
- accounts cannot be deleted, renamed to another code, or reopened.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None

MAX_AMOUNT = 2**53 - 1
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

APPEND_ONLY = ("ledger_entries", "ledger_lines", "ledger_period_closes")


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"

    def integer_only(column: str, name: str) -> list[sa.CheckConstraint]:
        # SQLite would store 1.5 or '12' in a BIGINT column; money must be a true integer.
        return [sa.CheckConstraint(f"typeof({column}) = 'integer'", name=name)] if sqlite else []

    op.create_table(
        "ledger_accounts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("parent_id", BigId, sa.ForeignKey("ledger_accounts.id"), nullable=True),
        sa.Column("name_ja", sa.String(200), nullable=False),
        sa.Column("name_en", sa.String(200), nullable=False),
        sa.Column("normal_side", sa.String(6), nullable=False),
        sa.Column("status", sa.String(6), nullable=False),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("normal_side IN ('debit', 'credit')", name="normal_side"),
        sa.CheckConstraint("status IN ('open', 'closed')", name="status"),
        sa.CheckConstraint("version >= 0", name="version"),
        *integer_only("balance", "balance_integer"),
        sa.UniqueConstraint("code", name="uq_ledger_accounts_code"),
    )
    op.create_table(
        "ledger_chain_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("closed_through", sa.Date, nullable=True),
        sa.CheckConstraint("id = 1", name="single_row"),
    )
    op.execute(
        "INSERT INTO ledger_chain_head (id, seq, hash, closed_through) "
        f"VALUES (1, 0, '{'0' * 64}', NULL)"
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("effective_date", sa.Date, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("source_ref", sa.String(200), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("content_digest", sa.String(64), nullable=False),
        sa.Column("reverses_entry_id", sa.BigInteger, sa.ForeignKey("ledger_entries.id"), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id > 0", name="id_positive"),
        sa.UniqueConstraint("idempotency_key", name="uq_ledger_entries_idempotency_key"),
        sa.UniqueConstraint("reverses_entry_id", name="uq_ledger_entries_reverses_entry_id"),
        sa.UniqueConstraint("hash", name="uq_ledger_entries_hash"),
    )
    op.create_table(
        "ledger_lines",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "entry_id",
            sa.BigInteger,
            sa.ForeignKey("ledger_entries.id", deferrable=True, initially="DEFERRED"),
            nullable=False,
        ),
        sa.Column("line_no", sa.SmallInteger, nullable=False),
        sa.Column("account_id", BigId, sa.ForeignKey("ledger_accounts.id"), nullable=False),
        sa.Column("side", sa.String(1), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("effective_date", sa.Date, nullable=False),
        sa.Column("balance_after", sa.BigInteger, nullable=False),
        sa.Column("account_version", sa.BigInteger, nullable=False),
        sa.CheckConstraint("side IN ('D', 'C')", name="side"),
        sa.CheckConstraint(f"amount > 0 AND amount <= {MAX_AMOUNT}", name="amount_range"),
        *integer_only("amount", "amount_integer"),
        *integer_only("balance_after", "balance_after_integer"),
        sa.UniqueConstraint("entry_id", "line_no", name="uq_ledger_lines_entry_line"),
        sa.UniqueConstraint("account_id", "account_version", name="uq_ledger_lines_account_version"),
    )
    op.create_index(
        "ix_ledger_lines_account_date",
        "ledger_lines",
        ["account_id", "effective_date", "side", "amount"],
    )
    op.create_table(
        "ledger_period_closes",
        sa.Column("business_date", sa.Date, primary_key=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.String(200), nullable=False),
        sa.Column("head_seq", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
    )
    if sqlite:
        _sqlite_triggers()
    else:
        _postgresql_triggers()


def _run(sql: str) -> None:
    # exec_driver_sql: no bind-parameter parsing of trigger bodies.
    op.get_bind().exec_driver_sql(sql)


def _sqlite_triggers() -> None:
    for table in APPEND_ONLY:
        for event in ("UPDATE", "DELETE"):
            _run(
                f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'ledger: {event} on {table} refused: the journal is "
                "append-only'); END"
            )
    _run(
        "CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts "
        "BEGIN SELECT RAISE(ABORT, 'ledger: accounts cannot be deleted, only closed'); END"
    )
    _run(
        "CREATE TRIGGER ledger_accounts_guard BEFORE UPDATE ON ledger_accounts "
        "WHEN NEW.code IS NOT OLD.code OR NEW.normal_side IS NOT OLD.normal_side "
        "OR NEW.parent_id IS NOT OLD.parent_id OR NEW.created_at IS NOT OLD.created_at "
        "OR (OLD.status = 'closed' AND NEW.status <> 'closed') "
        "BEGIN SELECT RAISE(ABORT, 'ledger: an account''s identity cannot change and a closed "
        "account cannot reopen'); END"
    )
    _run(
        "CREATE TRIGGER ledger_chain_head_guard BEFORE UPDATE ON ledger_chain_head "
        "WHEN NEW.seq < OLD.seq OR (OLD.closed_through IS NOT NULL AND "
        "(NEW.closed_through IS NULL OR NEW.closed_through < OLD.closed_through)) "
        "BEGIN SELECT RAISE(ABORT, 'ledger: the chain head only moves forward'); END"
    )
    _run(
        "CREATE TRIGGER ledger_chain_head_no_delete BEFORE DELETE ON ledger_chain_head "
        "BEGIN SELECT RAISE(ABORT, 'ledger: the chain head cannot be deleted'); END"
    )
    _run(
        "CREATE TRIGGER ledger_lines_guard BEFORE INSERT ON ledger_lines "
        "WHEN EXISTS (SELECT 1 FROM ledger_entries WHERE id = NEW.entry_id) "
        "OR (SELECT status FROM ledger_accounts WHERE id = NEW.account_id) = 'closed' "
        "BEGIN SELECT RAISE(ABORT, 'ledger: a line must belong to a new entry and an open "
        "account'); END"
    )
    _run(
        "CREATE TRIGGER ledger_entries_balanced BEFORE INSERT ON ledger_entries "
        "WHEN (SELECT COUNT(*) FROM ledger_lines WHERE entry_id = NEW.id) < 2 "
        "OR (SELECT SUM(CASE side WHEN 'D' THEN amount ELSE -amount END) "
        "    FROM ledger_lines WHERE entry_id = NEW.id) <> 0 "
        "BEGIN SELECT RAISE(ABORT, 'ledger: an entry needs two or more lines with debits equal "
        "to credits'); END"
    )
    _run(
        "CREATE TRIGGER ledger_entries_open_period BEFORE INSERT ON ledger_entries "
        "WHEN NEW.effective_date <= (SELECT closed_through FROM ledger_chain_head WHERE id = 1) "
        "BEGIN SELECT RAISE(ABORT, 'ledger: the effective date is in a closed period'); END"
    )


def _postgresql_triggers() -> None:
    _run(
        """
        CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION USING
                MESSAGE = 'ledger: ' || TG_OP || ' on ' || TG_TABLE_NAME
                          || ' refused: the journal is append-only',
                ERRCODE = 'integrity_constraint_violation';
        END $$
        """
    )
    for table in APPEND_ONLY:
        _run(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
    for table in (*APPEND_ONLY, "ledger_accounts", "ledger_chain_head"):
        _run(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        )
    _run(
        "CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts "
        "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
    )
    _run(
        "CREATE TRIGGER ledger_chain_head_no_delete BEFORE DELETE ON ledger_chain_head "
        "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
    )
    _run(
        """
        CREATE FUNCTION ledger_accounts_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.code <> OLD.code OR NEW.normal_side <> OLD.normal_side
               OR NEW.parent_id IS DISTINCT FROM OLD.parent_id
               OR NEW.created_at <> OLD.created_at
               OR (OLD.status = 'closed' AND NEW.status <> 'closed') THEN
                RAISE EXCEPTION USING
                    MESSAGE = 'ledger: an account''s identity cannot change and a closed account cannot reopen',
                    ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    _run(
        "CREATE TRIGGER ledger_accounts_guard BEFORE UPDATE ON ledger_accounts "
        "FOR EACH ROW EXECUTE FUNCTION ledger_accounts_guard()"
    )
    _run(
        """
        CREATE FUNCTION ledger_chain_head_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.seq < OLD.seq OR (OLD.closed_through IS NOT NULL AND
               (NEW.closed_through IS NULL OR NEW.closed_through < OLD.closed_through)) THEN
                RAISE EXCEPTION USING
                    MESSAGE = 'ledger: the chain head only moves forward',
                    ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    _run(
        "CREATE TRIGGER ledger_chain_head_guard BEFORE UPDATE ON ledger_chain_head "
        "FOR EACH ROW EXECUTE FUNCTION ledger_chain_head_guard()"
    )
    _run(
        """
        CREATE FUNCTION ledger_lines_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM ledger_entries WHERE id = NEW.entry_id) THEN
                RAISE EXCEPTION USING
                    MESSAGE = 'ledger: lines cannot be added to a written entry',
                    ERRCODE = 'integrity_constraint_violation';
            END IF;
            IF (SELECT status FROM ledger_accounts WHERE id = NEW.account_id) = 'closed' THEN
                RAISE EXCEPTION USING
                    MESSAGE = 'ledger: a closed account refuses postings',
                    ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    _run(
        "CREATE TRIGGER ledger_lines_guard BEFORE INSERT ON ledger_lines "
        "FOR EACH ROW EXECUTE FUNCTION ledger_lines_guard()"
    )
    # The balance check, used before an entry is inserted and again, deferred, at commit.
    _run(
        """
        CREATE FUNCTION ledger_check_entry(p_entry_id bigint) RETURNS void LANGUAGE plpgsql AS $$
        DECLARE
            n integer;
            net numeric;
        BEGIN
            SELECT count(*), coalesce(sum(CASE side WHEN 'D' THEN amount ELSE -amount END), 0)
              INTO n, net FROM ledger_lines WHERE entry_id = p_entry_id;
            IF n < 2 OR net <> 0 THEN
                RAISE EXCEPTION USING
                    MESSAGE = 'ledger: entry ' || p_entry_id
                              || ' needs two or more lines with debits equal to credits',
                    ERRCODE = 'integrity_constraint_violation';
            END IF;
        END $$
        """
    )
    _run(
        """
        CREATE FUNCTION ledger_entries_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM ledger_check_entry(NEW.id);
            IF NEW.effective_date <= (SELECT closed_through FROM ledger_chain_head WHERE id = 1) THEN
                RAISE EXCEPTION USING
                    MESSAGE = 'ledger: the effective date is in a closed period',
                    ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    _run(
        "CREATE TRIGGER ledger_entries_guard BEFORE INSERT ON ledger_entries "
        "FOR EACH ROW EXECUTE FUNCTION ledger_entries_guard()"
    )
    _run(
        """
        CREATE FUNCTION ledger_lines_balanced_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM ledger_check_entry(NEW.entry_id);
            RETURN NULL;
        END $$
        """
    )
    _run(
        "CREATE CONSTRAINT TRIGGER ledger_lines_balanced AFTER INSERT ON ledger_lines "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
        "EXECUTE FUNCTION ledger_lines_balanced_at_commit()"
    )


def downgrade() -> None:
    raise NotImplementedError("the ledger is append-only: there is no downgrade past it")
