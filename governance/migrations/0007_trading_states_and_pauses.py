"""Trading states (enabled | reduce_only | halted) replace the on/off switch, which they
carry over; strategies and instruments can be paused."""

from django.db import migrations, models


# Through the connection being migrated (`migrate --database owner`): the runtime role's
# connection would wait for ever on the locks this migration holds.
def states_from_switch(apps, schema_editor):
    states = apps.get_model("governance", "TradingState").objects.using(schema_editor.connection.alias)
    states.filter(enabled=True).update(state="enabled")
    states.filter(enabled=False).update(state="halted")


def switch_from_states(apps, schema_editor):
    states = apps.get_model("governance", "TradingState").objects.using(schema_editor.connection.alias)
    # Going back, only fully enabled trading stays on: reduce-only becomes a halt.
    states.update(enabled=False)
    states.filter(state="enabled").update(enabled=True)


class Migration(migrations.Migration):

    dependencies = [
        ('governance', '0006_ruleset_review_and_impact_reports'),
    ]

    operations = [
        migrations.AddField(
            model_name='instrument',
            name='pause_reason',
            field=models.CharField(blank=True, max_length=500),
        ),
        migrations.AddField(
            model_name='instrument',
            name='paused',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='instrument',
            name='paused_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='instrument',
            name='paused_by',
            field=models.CharField(blank=True, max_length=150),
        ),
        migrations.AddField(
            model_name='strategy',
            name='pause_reason',
            field=models.CharField(blank=True, max_length=500),
        ),
        migrations.AddField(
            model_name='strategy',
            name='paused',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='strategy',
            name='paused_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='strategy',
            name='paused_by',
            field=models.CharField(blank=True, max_length=150),
        ),
        migrations.AddField(
            model_name='tradingstate',
            name='state',
            field=models.CharField(choices=[('enabled', 'Enabled'), ('reduce_only', 'Reduce Only'), ('halted', 'Halted')], default='halted', max_length=16),
        ),
        migrations.RunPython(states_from_switch, switch_from_states),
        migrations.RemoveField(
            model_name='tradingstate',
            name='enabled',
        ),
    ]
