# Hand-written (makemigrations would also pick up other pending model changes): IdempotencyRecord only.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0003_reconciliation'),
    ]

    operations = [
        migrations.AddField(
            model_name='idempotencyrecord',
            name='resource_type',
            field=models.CharField(blank=True, help_text='e.g. payment, refund.', max_length=40, null=True),
        ),
        migrations.AddField(
            model_name='idempotencyrecord',
            name='resource_id',
            field=models.CharField(blank=True, max_length=40, null=True),
        ),
    ]
