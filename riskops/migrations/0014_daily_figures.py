from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('riskops', '0013_api_token_names_operator_index'),
    ]

    operations = [
        migrations.CreateModel(
            name='DayMember',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('figure', models.CharField(max_length=20)),
                ('key', models.CharField(blank=True, max_length=40)),
                ('member', models.BigIntegerField()),
            ],
            options={
                'verbose_name': 'counted member of today',
                'verbose_name_plural': 'counted members of today',
                'constraints': [
                    models.UniqueConstraint(fields=('day', 'figure', 'key', 'member'), name='one_day_member')
                ],
            },
        ),
        migrations.CreateModel(
            name='DailyFiguresDay',
            fields=[
                ('day', models.DateField(primary_key=True, serialize=False)),
                ('time_zone', models.CharField(max_length=40)),
                ('computed_at', models.DateTimeField()),
                ('until', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'verbose_name': 'day of daily figures',
                'verbose_name_plural': 'days of daily figures',
            },
        ),
        migrations.CreateModel(
            name='DailyFigure',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('figure', models.CharField(max_length=20)),
                ('key', models.CharField(blank=True, max_length=40)),
                ('n', models.BigIntegerField()),
            ],
            options={
                'verbose_name': 'daily figure',
                'verbose_name_plural': 'daily figures',
                'permissions': [('view_operator_figures', "Can see the dashboard's decisions per operator")],
                'constraints': [models.UniqueConstraint(fields=('day', 'figure', 'key'), name='one_daily_figure')],
            },
        ),
    ]
