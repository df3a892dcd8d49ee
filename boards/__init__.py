"""Board profiles (one data file per device) live in this folder."""
