"""The dispatcher side: deliveries to partners, party health, periodic jobs."""
