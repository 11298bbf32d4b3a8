"""umrisk: risk of unplanned admission and readmission for utilization management."""
