namespace TxLog.Storage;

/// <summary>
/// Kafka's rule for topic names: 1 to 249 characters from <c>[a-zA-Z0-9._-]</c>, and not "." or "..".
/// Checked before any file is touched, since the name becomes a directory name.
/// </summary>
public static class TopicName
{
    /// <summary>Longest allowed topic name (Kafka's limit, leaving room for "-partition" in file names).</summary>
    public const int MaxLength = 249;

    /// <summary>Throws <see cref="ArgumentException"/> (naming <paramref name="parameterName"/>) when <paramref name="name"/> is not a legal topic name.</summary>
    public static void Validate(string? name, string parameterName = "topic")
    {
        if (name is null)
        {
            throw new ArgumentNullException(parameterName);
        }

        if (name.Length == 0)
        {
            throw new ArgumentException("A topic name cannot be empty.", parameterName);
        }

        if (name is "." or "..")
        {
            throw new ArgumentException($"A topic name cannot be '{name}'.", parameterName);
        }

        if (name.Length > MaxLength)
        {
            throw new ArgumentException($"A topic name can have at most {MaxLength} characters; this one has {name.Length}.", parameterName);
        }

        foreach (char c in name)
        {
            bool legal = c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '.' or '_' or '-';
            if (!legal)
            {
                throw new ArgumentException($"Topic name '{name}' contains the character '{c}' (U+{(int)c:X4}); only ASCII letters, digits, '.', '_' and '-' are allowed.", parameterName);
            }
        }
    }
}
