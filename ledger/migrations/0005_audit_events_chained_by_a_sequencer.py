"""Audit events are written unchained and linked into the hash chain once, by the sequencer.

The second, plain guard of 0003 (no pgtrigger session switch) now lets exactly that one
update through on audit events: the link (seq, prev_hash, hash) written into an unchained
event, nothing else changed. Every other UPDATE and every DELETE is still refused.
"""

import ledger.models
import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations, models

LINK_ONCE = """
CREATE OR REPLACE FUNCTION ledger_audit_link_once() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.hash IS NULL
       AND NEW.hash IS NOT NULL AND NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL
       AND (NEW.id, NEW.kind, NEW.actor, NEW.created_at, NEW.proposal_id, NEW.payload, NEW.txid)
           IS NOT DISTINCT FROM (OLD.id, OLD.kind, OLD.actor, OLD.created_at, OLD.proposal_id, OLD.payload, OLD.txid)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'append-only table %: % is refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS ledger_auditevent_refuse_rewrite ON ledger_auditevent;
CREATE TRIGGER ledger_auditevent_link_once BEFORE UPDATE OR DELETE ON ledger_auditevent
    FOR EACH ROW EXECUTE FUNCTION ledger_audit_link_once();
"""

REFUSE_ALL = """
DROP TRIGGER IF EXISTS ledger_auditevent_link_once ON ledger_auditevent;
DROP FUNCTION IF EXISTS ledger_audit_link_once();
CREATE TRIGGER ledger_auditevent_refuse_rewrite BEFORE UPDATE OR DELETE ON ledger_auditevent
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_rewrite();
"""


def link_once(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(LINK_ONCE, params=None)


def refuse_all(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REFUSE_ALL, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0004_fills_keyed_by_order_and_trade'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='auditevent',
            options={'ordering': ['id']},
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name='auditevent',
            name='audit_event_append_only',
        ),
        migrations.AddField(
            model_name='auditevent',
            name='txid',
            field=models.BigIntegerField(db_default=ledger.models.CurrentTransactionId(), editable=False),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='hash',
            field=models.CharField(blank=True, max_length=64, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='prev_hash',
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='seq',
            field=models.BigIntegerField(blank=True, null=True, unique=True),
        ),
        migrations.AddIndex(
            model_name='auditevent',
            index=models.Index(condition=models.Q(('hash__isnull', True)), fields=['id'], name='audit_event_unchained'),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='auditevent',
            trigger=pgtrigger.compiler.Trigger(name='audit_event_no_delete', sql=pgtrigger.compiler.UpsertTriggerSql(func="RAISE EXCEPTION 'pgtrigger: Cannot delete rows from % table', TG_TABLE_NAME;", hash='7500951ff77ca98112877df90c0ecf11fd522420', operation='DELETE', pgid='pgtrigger_audit_event_no_delete_51280', table='ledger_auditevent', when='BEFORE')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='auditevent',
            trigger=pgtrigger.compiler.Trigger(name='audit_event_linked_once', sql=pgtrigger.compiler.UpsertTriggerSql(condition='WHEN (OLD."hash" IS NOT NULL OR NEW."hash" IS NULL OR NEW."seq" IS NULL OR NEW."prev_hash" IS NULL OR OLD."id" IS DISTINCT FROM (NEW."id") OR OLD."kind" IS DISTINCT FROM (NEW."kind") OR OLD."actor" IS DISTINCT FROM (NEW."actor") OR OLD."created_at" IS DISTINCT FROM (NEW."created_at") OR OLD."proposal_id" IS DISTINCT FROM (NEW."proposal_id") OR OLD."payload" IS DISTINCT FROM (NEW."payload") OR OLD."txid" IS DISTINCT FROM (NEW."txid"))', func="RAISE EXCEPTION 'pgtrigger: Cannot update rows from % table', TG_TABLE_NAME;", hash='e340dc973092351968d05a103fd4d5673f01456f', operation='UPDATE', pgid='pgtrigger_audit_event_linked_once_c26bf', table='ledger_auditevent', when='BEFORE')),
        ),
        migrations.RunPython(link_once, refuse_all),
    ]
