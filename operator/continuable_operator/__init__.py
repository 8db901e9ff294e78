"""ContinuableJob's operator: runs each job's attempts as pods and resumes them."""
