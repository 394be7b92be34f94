"""From an interaction to a queued job: the checks, the attachments and the request, shared by every
way of asking (slash commands, the message menu, replies and the result buttons)."""
