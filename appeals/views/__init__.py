"""Appeal pages: the borrower's signed-link pages (`borrower`), the reviewers' inbox and appeal page (`review`)."""
