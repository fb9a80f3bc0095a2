"""Leads: missed chats and offline messages someone must follow up, claimed by link or Slack."""
