"""Trading states (enabled | reduce_only | halted) replace the on/off switch, which they
carry over; strategies and instruments can be paused."""

from django.db import migrations, models


def states_from_switch(apps, schema_editor):
    TradingState = apps.get_model("governance", "TradingState")
    TradingState.objects.filter(enabled=True).update(state="enabled")
    TradingState.objects.filter(enabled=False).update(state="halted")


def switch_from_states(apps, schema_editor):
    TradingState = apps.get_model("governance", "TradingState")
    # Going back, only fully enabled trading stays on: reduce-only becomes a halt.
    TradingState.objects.update(enabled=False)
    TradingState.objects.filter(state="enabled").update(enabled=True)


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
