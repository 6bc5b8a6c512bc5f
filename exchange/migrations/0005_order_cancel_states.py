"""Orders can be cancelled: the cancelling and cancel_unknown states, and the kill switch's
request to cancel an order whose send was still under way."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('exchange', '0004_order_lookup_repeats'),
    ]

    operations = [
        migrations.AlterField(
            model_name='order',
            name='status',
            field=models.CharField(choices=[('new', 'New'), ('sending', 'Sending'), ('unknown', 'Unknown'), ('open', 'Open'), ('partially_filled', 'Partially Filled'), ('cancelling', 'Cancelling'), ('cancel_unknown', 'Cancel Unknown'), ('filled', 'Filled'), ('rejected', 'Rejected'), ('cancelled', 'Cancelled')], default='new', max_length=16),
        ),
        migrations.AddField(
            model_name='order',
            name='cancel_requested_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
