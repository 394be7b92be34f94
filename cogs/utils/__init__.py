"""What the Discord extensions share: the bot itself, its Surface for the job runner, buttons, request helpers."""
