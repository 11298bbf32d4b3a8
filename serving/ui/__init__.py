"""The web pages under ``/ui``: the review queue, the case, the outreach plan, the dashboards and the models."""
