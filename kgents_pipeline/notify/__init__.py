"""Notifications: tell a chat channel (a Slack-compatible webhook) that the verdict's state
changed. `message` builds the payload (pure); `webhook` posts it with retries and says what
happened; the history keeps every delivery (`history.notifications`)."""
