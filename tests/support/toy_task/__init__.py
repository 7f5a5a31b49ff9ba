"""A fourth task written as docs/guide/add-a-task.md says: an env file and a task module."""
