"""A second, plain append-only guard on audit, fill and realized-PnL rows.

pgtrigger's triggers can be skipped by any session that sets the `pgtrigger.ignore`
setting (that is how the test suite's flush gets past the TRUNCATE guard). These
triggers have no such switch: only a superuser (session_replication_role = replica)
or the table owner dropping or disabling them gets an UPDATE or DELETE through, and
the hash chain then shows it. Run the application as a role that does not own the
tables to close the second way too.
"""

from django.db import migrations

TABLES = ["ledger_auditevent", "ledger_fill", "ledger_realizedpnl"]

FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_refuse_rewrite() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'append-only table %: % is refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION, params=None)
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_refuse_rewrite BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION ledger_refuse_rewrite()"
        )


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_rewrite ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS ledger_refuse_rewrite()")


class Migration(migrations.Migration):
    dependencies = [("ledger", "0002_lots_and_realized_pnl")]

    operations = [migrations.RunPython(install, uninstall)]
