"""Batch scores of a model that ranks members for outreach keep what its list filters on at the run's date:
hospice and line of business (None for other models).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # for part of a day (2026-11-26) revision 0003 itself created these columns: a database made then has them
    have = {c['name'] for c in sa.inspect(op.get_bind()).get_columns('batch_scores')}
    with op.batch_alter_table('batch_scores', schema=None) as batch_op:
        if 'hospice' not in have:
            batch_op.add_column(sa.Column('hospice', sa.Boolean(), nullable=True))
        if 'line_of_business' not in have:
            batch_op.add_column(sa.Column('line_of_business', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('batch_scores', schema=None) as batch_op:
        batch_op.drop_column('line_of_business')
        batch_op.drop_column('hospice')
