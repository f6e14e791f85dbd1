"""Talking HTTP politely: origins, credentials by origin, redirects, retries, rate limits."""
