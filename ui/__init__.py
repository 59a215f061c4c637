"""Page-edge helpers: the only place besides the pages that imports streamlit."""
